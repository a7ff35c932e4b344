"""The CRM portal: sign-in, then the pages a role may use (st.navigation).

Run it with `crm portal` (or `streamlit run app/streamlit_app.py` with CRM_HOME set). Pages hold layout
only; reads are in app/queries.py, writes in app/edits.py, figures in app/charts.py.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.auth import current_viewer, sign_in_page, sign_out
from app.ui import plain

PAGES = Path(__file__).with_name("app_pages")

st.set_page_config(page_title="CRM portal", page_icon=":material/insights:", layout="wide")
# Tables leave the portal only through the CSV and Excel buttons under them (app/export.py neutralises
# formula-like text there); st.dataframe's own CSV download and clipboard copy would hand the same cells
# to a spreadsheet untouched.
st.set_option("client.disableDataExport", True)


def _page(file: str, title: str, icon: str) -> st.Page:
    return st.Page(str(PAGES / file), title=title, icon=icon)


# The one session check of this run (app/auth.py): the page below takes this viewer (app.ui.page_viewer).
viewer = current_viewer()
if viewer is None:
    page = st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:")])
else:
    analysis = [
        _page("overview.py", "Overview", ":material/dashboard:"),
        _page("funnel.py", "Funnel", ":material/filter_alt:"),
        _page("pipeline_forecast.py", "Pipeline & forecast", ":material/trending_up:"),
        _page("segments.py", "Segments", ":material/donut_small:"),
        _page("customer_360.py", "Customer 360", ":material/person_search:"),
        _page("churn_worklist.py", "Churn risk", ":material/warning:"),
        _page("campaigns.py", "Campaigns", ":material/campaign:"),
        _page("service.py", "Service & SLA", ":material/support_agent:"),
        _page("reps.py", "Reps & workload", ":material/groups:"),
    ]
    work = [_page("records.py", "Records", ":material/edit_note:")]
    if viewer.can_assign:
        work.append(_page("leads.py", "Lead assignment", ":material/assignment_ind:"))
    operations = [_page("data_quality.py", "Data quality", ":material/fact_check:")]
    page = st.navigation({"Analysis": analysis, "Work": work, "Operations": operations})
    with st.sidebar:
        st.caption(f"Signed in as **{plain(viewer.username)}** · {viewer.role.replace('_', ' ')} · "
                   f"{plain(viewer.scope_label)}")
        if st.button("Sign out", key="sign_out", icon=":material/logout:"):
            sign_out()
page.run()
