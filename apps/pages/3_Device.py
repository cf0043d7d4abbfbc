"""Device: what this computer can run, whether each package still reproduces its reference
here (`hidiff verify`), and how fast it runs."""

import onnxruntime as ort
import pandas as pd
import plotly.express as px
import streamlit as st

from apps import device_bench, state, ui
from edge_runtime.package import verify_package
from edge_runtime.providers import AUTO_ORDER, PROFILES

ui.page_setup("Device")

st.subheader("Execution providers")
offered = set(ort.get_available_providers())
rows = [
    {
        "profile": name,
        "available": "yes" if any(p in offered for p in PROFILES[name].providers) else "no",
        "onnxruntime providers": ", ".join(PROFILES[name].providers),
        "needs": PROFILES[name].needs,
    }
    for name in AUTO_ORDER
]
st.dataframe(pd.DataFrame(rows), hide_index=True, key="dev_providers")
st.caption(f"onnxruntime {ort.__version__}; 'auto' picks: {ui.available_profiles()[0]}")
provider = st.selectbox(
    "Provider for the checks below", ui.available_profiles(), key="dev_provider"
)

st.subheader("Model packages: self-check")
packages = state.find_packages()
if not packages:
    st.error("No model package installed.")
for path in packages:
    c1, c2 = st.columns([3, 1])
    label = ui.guarded(lambda path=path: state.package_label(path))
    c1.markdown(f"**{label or path.name}**  \n`{path}`")
    if label is not None and c2.button("Verify", key=f"verify_{path.name}"):
        with st.spinner(f"Running the reference cases of {path.name}..."):
            report = ui.guarded(
                lambda path=path: verify_package(state.get_package(str(path)), provider)
            )
        if report is not None:
            st.session_state.setdefault("verify", {})[str(path)] = report
    report = st.session_state.get("verify", {}).get(str(path))
    if report is not None:
        verdict = "PASSED" if report.passed else "FAILED"
        (st.success if report.passed else st.error)(
            f"{path.name}: self-check {verdict} on {report.provider} ({report.precision})"
        )
        cases = pd.DataFrame(
            [
                {
                    "reference case": c.name,
                    "PSNR vs shipped output (dB)": round(c.psnr_db, 2),
                    "needed (dB)": c.psnr_min_db,
                    "seconds": round(c.seconds, 3),
                    "passed": c.passed,
                }
                for c in report.cases
            ]
        )
        checks = pd.DataFrame(
            [
                {
                    "metric vs true MRI": m.name,
                    "here": round(m.value, 4),
                    "shipped": round(m.shipped, 4),
                    "tolerance": m.tolerance,
                    "passed": m.passed,
                }
                for m in report.checks
            ]
        )
        st.dataframe(cases, hide_index=True, key=f"verify_cases_{path.name}")
        st.dataframe(checks, hide_index=True, key=f"verify_checks_{path.name}")

st.subheader("Quick benchmark")
st.caption(
    "The package's own reference slices, one warm-up then the median of 3 runs. Memory: growth "
    "of the app's resident memory during the run, and the app process's peak."
)
if packages:
    chosen = ui.package_picker("Package to benchmark", "dev_bench_package")
    if chosen is not None and st.button("Run benchmark", key="dev_bench_run", type="primary"):
        with st.spinner("Benchmarking..."):
            result = ui.guarded(
                lambda: device_bench.run_bench(state.get_package(str(chosen)), provider)
            )
        if result is not None:
            device_bench.save_result(result)
            m1, m2, m3 = st.columns(3)
            m1.metric("Latency per slice", f"{result.ms_per_slice:.1f} ms")
            m2.metric("Memory growth", f"{result.rss_growth_mb:.0f} MB")
            m3.metric("Peak app memory", f"{result.peak_rss_mb:.0f} MB")
history = device_bench.load_results()
if history:
    df = pd.DataFrame(history)
    st.dataframe(df.iloc[::-1], hide_index=True, key="dev_history")
    df["run"] = df["package"] + " / " + df["provider"].str.removesuffix("ExecutionProvider")
    fig = px.bar(
        df.tail(12),
        x="date",
        y="ms_per_slice",
        color="run",
        title="Latency per slice (ms), last runs",
    )
    st.plotly_chart(fig, key="dev_plot")
else:
    st.caption(f"No benchmark yet on this device (kept in {device_bench.results_path()}).")
