"""Compare: one scan through two packages (compressed and full), where and how much they differ."""

import numpy as np
import pandas as pd
import streamlit as st

from apps import analysis, plots, state, ui

ui.page_setup("Compare")
scan = state.current_scan()
packages = state.find_packages()
if len(packages) == 1:
    st.info(
        "Only one model package is installed, so it is compared with itself (the difference "
        "is zero). Install the full model's package beside it to compare compressed vs full."
    )
idx_a, idx_b = ui.compressed_and_full(packages)
c1, c2, c3, c4 = st.columns(4)
with c1:
    pa = ui.package_picker("Package A (compressed)", "cmp_a", idx_a)
with c2:
    pb = ui.package_picker("Package B (full)", "cmp_b", idx_b)
with c3:
    sequence = ui.sequence_picker("cmp_sequence")
with c4:
    provider = st.selectbox("Execution provider", ui.available_profiles(), key="cmp_provider")
seed = 0

if scan is None:
    st.info("Open a scan in the sidebar first.")
elif (
    pa is not None and pb is not None and st.button("Run comparison", type="primary", key="cmp_run")
):
    a = ui.synthesize(scan, pa, provider, sequence, seed)
    b = ui.synthesize(scan, pb, provider, sequence, seed) if a is not None else None
    if a is not None and b is not None:
        st.session_state.comparison = (a, b)

comparison = st.session_state.get("comparison")
if scan is not None and comparison is not None:
    a, b = comparison
    va, vb = a.result.image.voxels, b.result.image.voxels
    diff = va - vb
    name_a = state.get_package(a.package).name
    name_b = state.get_package(b.package).name
    t1, t2, t3 = st.columns(3)
    t1.metric("A: time per slice", f"{a.result.stats.seconds_per_slice * 1000:.0f} ms", help=name_a)
    t2.metric("B: time per slice", f"{b.result.stats.seconds_per_slice * 1000:.0f} ms", help=name_b)
    t3.metric(
        "Speed-up A vs B", f"{b.result.stats.seconds / max(a.result.stats.seconds, 1e-9):.1f}x"
    )
    z = ui.slice_viewer(
        scan, {f"A: {name_a}": va, f"B: {name_b}": vb, "A - B": diff}, "cmp", diff=True
    )

    st.subheader("Metrics")
    rows = {"A vs B": ui.metrics_of(va, vb, scan)}
    ref = scan.reference.get(a.sequence)
    if ref is not None:
        rows["A vs reference MRI"] = ui.metrics_of(va, ref, scan)
        rows["B vs reference MRI"] = ui.metrics_of(vb, ref, scan)
    else:
        st.caption("No reference MRI with this scan: metrics against it need a phantom case.")
    names = [m.name for m in rows["A vs B"]]
    table = pd.DataFrame({k: {m.name: m.text() for m in v} for k, v in rows.items()}).reindex(names)
    st.dataframe(table, key="cmp_table")
    st.session_state.comparison_metrics = {k: {m.name: m.value for m in v} for k, v in rows.items()}

    st.subheader("Interactive views")
    spacing_yx = (scan.ct.spacing[1], scan.ct.spacing[0])
    st.plotly_chart(
        plots.difference_heatmap(diff[z], spacing_yx, f"A - B, slice {z}"), key="cmp_heat"
    )
    vols = {"CT": scan.ct.voxels, "A": va, "B": vb}
    w = analysis.CT_WINDOWS["abdomen"]
    ranges = {
        "CT": (w.level - w.width / 2, w.level + w.width / 2),
        "A": analysis.mr_range(va),
        "B": analysis.mr_range(vb),
    }
    st.plotly_chart(plots.slice_stack(vols, z, ranges), key="cmp_stack")
    if scan.has_labels:
        st.plotly_chart(plots.anatomy_3d(analysis.surfaces(scan)), key="cmp_3d")
    else:
        st.caption("3D view of liver, vessels and lesions: needs their labels (phantom case).")
    st.caption(f"Largest |A - B| on this scan: {float(np.abs(diff).max()):.3g}")
