"""Export: the synthetic MRI to disk, PACS or 3D Slicer, and a report of the comparison."""

from pathlib import Path

import streamlit as st

from apps import analysis, export, state, ui

ui.page_setup("Export")
scan = state.current_scan()
done = state.syntheses()
if scan is None or not done:
    st.info("Nothing to export yet: open a scan and synthesize it (Synthesize or Compare page).")
    st.stop()


def describe(key: str) -> str:
    s = done[key]
    return f"{Path(s.package).name}, {ui.SEQUENCES[s.sequence]}, seed {s.seed}, {s.provider}"


key = st.selectbox("Synthetic volume", list(done), format_func=describe, key="exp_choice")
chosen = done[key]
package = state.get_package(chosen.package)
image = chosen.result.image
seq = chosen.sequence
stem = f"{scan.name}_synthetic_{seq}".replace(" ", "_")

c1, c2 = st.columns(2)
with c1:
    st.subheader("Files")
    nifti = ui.guarded(lambda: export.nifti_bytes(image, f"{stem}.nii.gz"))
    if nifti is not None:
        st.download_button(
            "NIfTI (.nii.gz)", nifti, f"{stem}.nii.gz", "application/gzip", key="exp_nifti"
        )
    if st.button("Prepare DICOM series", key="exp_dicom_make"):
        st.session_state.exp_dicom_zip = ui.guarded(
            lambda: export.dicom_zip(image, scan, package, seq)
        )
    if st.session_state.get("exp_dicom_zip"):
        st.download_button(
            "Derived DICOM series (.zip)",
            st.session_state.exp_dicom_zip,
            f"{stem}_dicom.zip",
            "application/zip",
            key="exp_dicom",
        )
        joins = (
            "joins the CT's study"
            if scan.kind == "DICOM series"
            else "new anonymous study (the CT was not DICOM)"
        )
        st.caption(f"MR, ImageType DERIVED, description 'SYNTHETIC ...'; {joins}.")
with c2:
    st.subheader("3D Slicer")
    if st.button("Prepare Slicer folder (.zip)", key="exp_slicer_make"):
        st.session_state.exp_slicer_zip = ui.guarded(lambda: export.slicer_zip(scan, image, seq))
    if st.session_state.get("exp_slicer_zip"):
        st.download_button(
            "Slicer folder (.zip)",
            st.session_state.exp_slicer_zip,
            f"{stem}_slicer.zip",
            "application/zip",
            key="exp_slicer",
        )
    target = st.text_input(
        "...or write the folder here (a path on this computer)", key="exp_slicer_path"
    )
    if st.button("Write folder", key="exp_slicer_write") and target:
        written = ui.guarded(
            lambda: export.write_slicer_folder(Path(target).expanduser(), scan, image, seq)
        )
        if written:
            st.success(
                f"Wrote {len(written)} files into {target}: " + ", ".join(p.name for p in written)
            )

st.subheader("Report")
comparison = st.session_state.get("comparison")
z = analysis.best_slice(scan)
if comparison is not None:
    a, b = comparison
    va, vb = a.result.image.voxels, b.result.image.voxels
    diff = st.session_state.setdefault("exp_diff", {}).setdefault((id(va), id(vb)), va - vb)
    panels = {f"A: {Path(a.package).name}": va, f"B: {Path(b.package).name}": vb, "A - B": diff}
    rows = {"A vs B": ui.metrics_of(va, vb, scan)}
    ref = scan.reference.get(a.sequence)
    if ref is not None:
        rows["A vs reference"] = ui.metrics_of(va, ref, scan)
        rows["B vs reference"] = ui.metrics_of(vb, ref, scan)
    title = f"HiDiff-Edge comparison: {scan.name}"
else:
    panels = {f"synthetic {ui.SEQUENCES[seq]}": image.voxels}
    rows = {}
    ref = scan.reference.get(seq)
    if ref is not None:
        panels[f"true {ui.SEQUENCES[seq]}"] = ref
        rows = {"synthetic vs reference": ui.metrics_of(image.voxels, ref, scan)}
    title = f"HiDiff-Edge synthesis: {scan.name}"
    st.caption("Run the Compare page first to put both models in the report.")
report_key = (scan.key, title, *(id(v) for v in panels.values()))
if st.session_state.get("exp_report_key") != report_key:
    fig = export.report_figure(scan, z, panels, rows, title)
    st.session_state.exp_report = (export.figure_bytes(fig, "png"), export.figure_bytes(fig, "pdf"))
    st.session_state.exp_report_key = report_key
png, pdf = st.session_state.exp_report
st.image(png, caption="report preview")
r1, r2 = st.columns(2)
r1.download_button("Report (PNG)", png, f"{stem}_report.png", "image/png", key="exp_png")
r2.download_button("Report (PDF)", pdf, f"{stem}_report.pdf", "application/pdf", key="exp_pdf")
