"""HiDiff-Edge desktop app: the start page (`hidiff app` opens it).

Streamlit runs this file; the pages in `pages/` are listed in the sidebar. The app is a thin
layer over `edge_runtime` (reading, synthesis, packages) and `benchmarks` (metrics).
"""

import streamlit as st

from apps import state, ui

ui.page_setup("HiDiff-Edge")
st.markdown(
    "Open a CT on the left (a DICOM folder as a zip or a path, a NIfTI/MHA/NRRD file, or the "
    "demo case), then:"
)
st.page_link("pages/1_Synthesize.py", label="Synthesize: the synthetic MRI beside the CT")
st.page_link("pages/2_Compare.py", label="Compare: compressed vs full model, metrics, 3D")
st.page_link("pages/3_Device.py", label="Device: providers, self-check, quick benchmark")
st.page_link("pages/4_Export.py", label="Export: NIfTI, DICOM, report, 3D Slicer folder")
packages = state.find_packages()
st.caption(f"{len(packages)} model package(s) installed: " + ", ".join(p.name for p in packages))
