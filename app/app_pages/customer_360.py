"""Customer 360: one customer's profile, value, risk, timeline, deals, tickets and suggestions."""

import streamlit as st

from app import charts, queries
from app.ui import money, not_computed, page_viewer, share, table

viewer = page_viewer()
st.title("Customer 360")
search = st.text_input("Find a customer", key="c360_search",
                       placeholder="customer key" if viewer.masked else "name or customer key")
found = queries.customers(viewer, search=search, limit=50)
if found.is_empty():
    st.info("No customer matches (or none in your scope)." if search else "No customers yet.")
    st.stop()
labels = {r["customer_key"]: f"{r['customer_name']} · {r['customer_key']}" for r in found.iter_rows(named=True)}
key = st.selectbox("Customer", list(labels), format_func=labels.get, key="c360_pick")
profile = queries.customer_360(viewer, key)
if profile is None:
    st.warning("This customer is outside your scope.")
    st.stop()

st.header(str(profile.get("customer_name")))
st.caption(f"{profile.get('customer_key')} · {profile.get('account_type')} · {profile.get('industry') or '–'} · "
           f"{profile.get('city') or '–'}, {profile.get('country')} · owner {profile.get('owner_user_id')} "
           f"({profile.get('owner_name')}) · {profile.get('accounts_in_group')} account(s) merged")
a, b, c, d = st.columns(4)
a.metric("Lifetime revenue", money(profile.get("lifetime_revenue")), border=True)
b.metric("Revenue 12m", money(profile.get("revenue_12m")), border=True)
c.metric("Historical CLV", money(profile.get("historical_clv")), border=True)
d.metric("Predicted CLV", money(profile.get("predicted_clv")) if "predicted_clv" in profile else "not yet computed",
         border=True)
a, b, c, d = st.columns(4)
a.metric("Segment", f"{profile.get('rfm_segment')}", help="RFM segment", border=True)
b.metric("Lifecycle", f"{profile.get('lifecycle_stage')}", border=True)
c.metric("Churn risk", share(profile.get("churn_probability")) if "churn_probability" in profile
         else "not yet computed", f"{profile.get('churn_risk_band') or ''}" or None, delta_color="off", border=True)
d.metric("Overdue", money(profile.get("overdue_amount")), border=True)

timeline = queries.customer_timeline(viewer, key)
st.plotly_chart(charts.timeline(timeline), key="c360_timeline")
tabs = st.tabs(["Timeline", "Deals", "Orders", "Tickets", "Churn drivers", "Next best product", "Profile"])
with tabs[0]:
    table(timeline, f"timeline_{key}")
with tabs[1]:
    table(queries.customer_deals(viewer, key), f"deals_{key}")
with tabs[2]:
    orders = queries.customer_orders(viewer, key)
    if orders.is_empty():
        st.caption(f"{profile.get('lifetime_orders') or 0} completed orders, first {profile.get('first_order_date')}, "
                   f"last {profile.get('last_order_date')} (order rows are not published as a mart yet).")
    else:
        table(orders, f"orders_{key}")
with tabs[3]:
    table(queries.customer_tickets(viewer, key), f"tickets_{key}")
with tabs[4]:
    drivers = queries.churn_drivers(viewer, key)
    if drivers.is_empty():
        not_computed("Churn drivers")
    else:
        table(drivers, f"churn_{key}")
with tabs[5]:
    nbp = queries.next_best_products(viewer, key)
    if nbp.is_empty():
        not_computed("Next-best-product suggestions")
    else:
        table(nbp, f"nbp_{key}")
with tabs[6]:
    st.json({k: (str(v) if v is not None else None) for k, v in profile.items()}, expanded=False)
