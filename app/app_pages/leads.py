"""Lead assignment (managers and admins): hand unassigned leads to reps in turn or to the least loaded."""

import polars as pl
import streamlit as st

from app import charts, edits, queries
from app.ui import page_viewer, plain, table

viewer = page_viewer(needs_snapshot=False)
st.title("Lead assignment")
if not viewer.can_assign:
    st.warning("Only managers and admins assign leads.")
    st.stop()
store = queries.operational_store()
leads = queries.unassigned_leads(viewer)
reps = edits.assignable_reps(viewer, store)
load = edits.open_lead_load(store, reps)
st.caption(f"{leads.height} open lead(s) without an owner; {len(reps)} rep(s) in {plain(viewer.scope_label)}.")
st.plotly_chart(charts.horizontal_bars(pl.DataFrame({"rep": list(load), "open_leads": list(load.values())}),
                                       "rep", "open_leads", "Open leads per rep now"), key="lead_load")
table(leads, "unassigned_leads", height=240)
if leads.is_empty() or not reps:
    st.stop()
with st.form("distribute"):
    chosen = st.multiselect("Reps to receive leads", reps, default=reps, key="lead_reps")
    rule = st.radio("Rule", ["round_robin", "least_loaded"], horizontal=True, key="lead_rule",
                    format_func=lambda r: {"round_robin": "Round robin", "least_loaded": "Least loaded first"}[r])
    how_many = st.number_input("How many leads (oldest first)", 1, leads.height, min(leads.height, 20), key="lead_n")
    go = st.form_submit_button("Distribute", type="primary")
if go:
    try:
        assigned = edits.distribute_leads(viewer, store, leads["lead_id"].head(int(how_many)).to_list(), chosen, rule)
        st.success(f"Assigned {len(assigned)} lead(s): " + ", ".join(
            f"{plain(owner)} +{n}" for owner, n in pl.Series(list(assigned.values())).value_counts().iter_rows()))
    except (edits.PermissionDenied, edits.RecordValidationError) as exc:
        st.error(plain(exc))
