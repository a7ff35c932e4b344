-- The data's "today": the latest order date or interaction date in the warehouse. Marts use it instead of
-- current_date so the same data always gives the same marts. An empty warehouse falls back to current_date.
with latest_order as (

    select max(order_date) as latest_date
    from {{ ref('stg_crm__orders') }}

),

latest_interaction as (

    select max(cast(occurred_at as date)) as latest_date
    from {{ ref('stg_crm__interactions') }}

),

final as (

    select
        coalesce(
            greatest(latest_order.latest_date, latest_interaction.latest_date),
            latest_order.latest_date,
            latest_interaction.latest_date,
            current_date
        ) as as_of_date,
    from latest_order
    cross join latest_interaction

)

select * from final
