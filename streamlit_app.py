"""Backline: the app's entry point."""

import streamlit as st

st.set_page_config(page_title="Backline", layout="wide")
st.title("Backline")
st.write("Back-pain triage for oncology teams.")
