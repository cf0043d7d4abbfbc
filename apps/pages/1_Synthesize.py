"""Synthesize: CT in, synthetic MRI out, in the CT's geometry, shown side by side."""

import streamlit as st

from apps import state, ui

ui.page_setup("Synthesize")
scan = state.current_scan()
c1, c2, c3, c4 = st.columns(4)
with c1:
    sequence = ui.sequence_picker("syn_sequence")
with c2:
    package = ui.package_picker("Model package", "syn_package")
with c3:
    provider = st.selectbox("Execution provider", ui.available_profiles(), key="syn_provider")
with c4:
    seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, key="syn_seed"))

if scan is None:
    st.info("Open a scan in the sidebar first.")
elif package is not None and st.button("Synthesize", type="primary", key="syn_run"):
    ui.synthesize(scan, package, provider, sequence, seed)

if scan is not None and package is not None:
    key = state.synthesis_key(str(package), provider, sequence, seed)
    done = state.syntheses().get(key)
    if done is not None:
        stats = done.result.stats
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Time per slice", f"{stats.seconds_per_slice * 1000:.0f} ms")
        m2.metric("Slices", stats.slices)
        m3.metric("Sampler steps", stats.steps)
        m4.metric(
            "Provider", f"{stats.provider.removesuffix('ExecutionProvider')} {stats.precision}"
        )
        panels = {f"synthetic {ui.SEQUENCES[sequence]}": done.result.image.voxels}
        if sequence in scan.reference:
            panels[f"true {ui.SEQUENCES[sequence]} (phantom)"] = scan.reference[sequence]
        ui.slice_viewer(scan, panels, "syn")
