{{
    config(
        materialized='incremental',
        unique_key=['account_id', 'activity_date'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- One row per account and day with any order or interaction: the history customer marts aggregate.
-- Incremental: a run recomputes only the (account, day) pairs touched by rows ingested since the last run
-- (the `_ingested_at` watermark), so a new day of logs costs that day, not the whole history. Keyed by
-- account, not customer_key, so a later identity merge never leaves stale keys behind (marts join
-- int_customers_resolved). Erasure or deleted raw rows need `--full-refresh` of this model.
with orders as (

    select * from {{ ref('stg_crm__orders') }}

),

order_lines as (

    select * from {{ ref('stg_crm__order_lines') }}

),

contacts as (

    select contact_id, account_id, from {{ ref('stg_crm__contacts') }}

),

interactions as (

    select
        interactions.interaction_id,
        coalesce(interactions.account_id, contacts.account_id) as account_id,
        interactions.occurred_at,
        cast(interactions.occurred_at as date) as activity_date,
        interactions.direction,
        interactions._ingested_at,
    from {{ ref('stg_crm__interactions') }} as interactions
    left join contacts
        on interactions.contact_id = contacts.contact_id

),

{% if is_incremental() %}
watermark as (

    select coalesce(max(last_ingested_at), timestamp '1900-01-01') as loaded_through,
    from {{ this }}

),

changed_pairs as (

    select orders.account_id, orders.order_date as activity_date,
    from orders
    where orders._ingested_at > (select loaded_through from watermark)

    union

    select orders.account_id, orders.order_date as activity_date,
    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id
    where order_lines._ingested_at > (select loaded_through from watermark)

    union

    select account_id, activity_date,
    from interactions
    where
        _ingested_at > (select loaded_through from watermark)
        and account_id is not null

),

first_changed_day as (

    select min(activity_date) as first_day, from changed_pairs

),
{% endif %}

order_totals as (

    select
        order_lines.order_id,
        sum(case when orders.status = 'completed'
            then {{ line_revenue('order_lines.quantity', 'order_lines.unit_price', 'order_lines.discount_pct', 'order_lines.line_amount') }}
            else 0 end) as revenue,
        sum(case when orders.status = 'completed' then order_lines.quantity * products.unit_cost else 0 end) as cost,
        max(order_lines._ingested_at) as last_ingested_at,
    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id
    left join {{ ref('stg_crm__products') }} as products
        on order_lines.product_id = products.product_id
    {% if is_incremental() %}
    where orders.order_date >= (select first_day from first_changed_day)
    {% endif %}
    group by order_lines.order_id

),

daily_orders as (

    select
        orders.account_id,
        orders.order_date as activity_date,
        count(*) as orders,
        count(*) filter (where orders.status = 'completed') as completed_orders,
        coalesce(sum(order_totals.revenue), 0) as revenue,
        coalesce(sum(order_totals.cost), 0) as cost,
        greatest(max(orders._ingested_at), max(order_totals.last_ingested_at)) as last_ingested_at,
    from orders
    left join order_totals
        on orders.order_id = order_totals.order_id
    {% if is_incremental() %}
    where orders.order_date >= (select first_day from first_changed_day)
    {% endif %}
    group by orders.account_id, orders.order_date

),

daily_interactions as (

    select
        account_id,
        activity_date,
        count(*) as interactions,
        count(*) filter (where direction = 'inbound') as inbound_interactions,
        max(occurred_at) as last_interaction_at,
        max(_ingested_at) as last_ingested_at,
    from interactions
    where
        account_id is not null
        {% if is_incremental() %}
        and occurred_at >= (select first_day from first_changed_day)
        {% endif %}
    group by account_id, activity_date

),

combined as (

    select
        coalesce(daily_orders.account_id, daily_interactions.account_id) as account_id,
        coalesce(daily_orders.activity_date, daily_interactions.activity_date) as activity_date,
        coalesce(daily_orders.orders, 0) as orders,
        coalesce(daily_orders.completed_orders, 0) as completed_orders,
        coalesce(daily_orders.revenue, 0) as revenue,
        coalesce(daily_orders.cost, 0) as cost,
        coalesce(daily_orders.revenue, 0) - coalesce(daily_orders.cost, 0) as margin,
        coalesce(daily_interactions.interactions, 0) as interactions,
        coalesce(daily_interactions.inbound_interactions, 0) as inbound_interactions,
        daily_interactions.last_interaction_at,
        greatest(daily_orders.last_ingested_at, daily_interactions.last_ingested_at) as last_ingested_at,
    from daily_orders
    full outer join daily_interactions
        on daily_orders.account_id = daily_interactions.account_id
        and daily_orders.activity_date = daily_interactions.activity_date

),

final as (

    select combined.*,
    from combined
    {% if is_incremental() %}
    inner join changed_pairs
        on combined.account_id = changed_pairs.account_id
        and combined.activity_date = changed_pairs.activity_date
    {% endif %}

)

select * from final
