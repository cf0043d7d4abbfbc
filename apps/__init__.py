"""The Streamlit desktop app for primary hospitals."""
