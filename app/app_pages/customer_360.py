"""Customer 360: one customer's profile, value and predicted value, churn risk with its drivers, the
interaction timeline, orders, deals, tickets and the products to offer next."""

import streamlit as st

from app import charts, queries
from app.ui import money, not_computed, page_viewer, plain, share, table

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
churn = queries.customer_churn(viewer, key)
clv = queries.customer_clv(viewer, key)

st.header(plain(profile.get("customer_name")))  # record values reach Markdown only through plain()
st.caption(" · ".join([plain(profile.get("customer_key")), plain(profile.get("account_type")),
                       plain(profile.get("industry")),
                       f"{plain(profile.get('city'))}, {plain(profile.get('country'))}",
                       f"owner {plain(profile.get('owner_user_id'))} ({plain(profile.get('owner_name'))})",
                       f"{plain(profile.get('accounts_in_group'))} account(s) merged"]))
a, b, c, d = st.columns(4)
a.metric("Lifetime revenue", money(profile.get("lifetime_revenue")), border=True)
b.metric("Revenue 12m", money(profile.get("revenue_12m")), border=True)
c.metric("Historical CLV", money(profile.get("historical_clv")), border=True)
d.metric("Predicted CLV", money(clv["predicted_clv"]) if clv else "not yet computed", border=True,
         help="Discounted revenue expected in the next 12 months (BG/NBD purchases x Gamma-Gamma spend).")
a, b, c, d = st.columns(4)
a.metric("Segment", plain(profile.get("rfm_segment")), help="RFM segment", border=True)
b.metric("Lifecycle", plain(profile.get("lifecycle_stage")), border=True)
c.metric("Churn risk", share(churn["churn_probability"]) if churn else "not yet computed",
         f"{churn['risk_band']} risk" if churn else None, delta_color="off", delta_arrow="off", border=True)
d.metric("Overdue", money(profile.get("overdue_amount")), border=True)

timeline = queries.customer_timeline(viewer, key)
st.plotly_chart(charts.timeline(timeline), key="c360_timeline")
tabs = st.tabs(["Timeline", "Interactions", "Orders", "Deals", "Tickets", "Churn risk", "Value (CLV)",
                "Next best product", "Profile"])
with tabs[0]:
    table(timeline, f"timeline_{key}")
with tabs[1]:
    interactions = queries.customer_interactions(viewer, key)
    if not interactions.is_empty():
        st.caption(f"{interactions.height:,} interactions, latest {interactions['occurred_at'][0]:%Y-%m-%d}; "
                   f"{profile.get('interactions_90d') or 0} in the last 90 days.")
    table(interactions, f"interactions_{key}")
with tabs[2]:
    orders = queries.customer_orders(viewer, key)
    if not orders.is_empty():
        st.caption(f"{orders.height:,} orders, {money(orders['revenue'].sum())} revenue from completed ones.")
    table(orders, f"orders_{key}")
with tabs[3]:
    table(queries.customer_deals(viewer, key), f"deals_{key}")
with tabs[4]:
    table(queries.customer_tickets(viewer, key), f"tickets_{key}")
with tabs[5]:
    if churn is None:
        not_computed("Churn risk for this customer")
    else:
        st.markdown(f"**{share(churn['churn_probability'])}** probability that this customer goes quiet (no order, "
                    f"interaction or ticket from three months on) ({plain(churn['risk_band'])} risk) · model "
                    f"{plain(churn['model_version'])}")
        drivers = queries.churn_drivers(viewer, key)
        if drivers.is_empty():
            st.caption("No feature raises this customer's risk noticeably.")
        else:
            st.plotly_chart(charts.horizontal_bars(drivers, "driver", "effect", "What raises the risk",
                                                   color="#dc2626"), key=f"drivers_{key}")
            table(drivers, f"churn_drivers_{key}")
with tabs[6]:
    if clv is None:
        not_computed("Predicted CLV for this customer")
    else:
        a, b, c = st.columns(3)
        a.metric("Expected purchases, next 12 months", f"{clv['expected_purchases_12m']:.1f}", border=True)
        b.metric("Probability still active", share(clv["probability_alive"]), border=True)
        c.metric("Expected spend per order", money(clv["expected_average_spend"]), border=True)
        st.caption(f"CLV model {plain(clv['model_version'])}")
with tabs[7]:
    nbp = queries.next_best_products(viewer, key)
    if nbp.is_empty():
        not_computed("Next-best-product suggestions")
    else:
        table(nbp, f"nbp_{key}", score=st.column_config.ProgressColumn("score", min_value=0,
                                                                       max_value=max(nbp["score"].max(), 1e-9)))
with tabs[8]:
    st.json({k: (str(v) if v is not None else None) for k, v in profile.items()}, expanded=False)
