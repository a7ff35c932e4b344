-- Profitability of customer segments over the RFM window (trailing 365 days): one row per segment
-- dimension (rfm_segment, lifecycle_stage, value_tier, account_type, region) and value.
with customers as (

    select
        rfm.customer_key,
        rfm.rfm_segment,
        rfm.lifecycle_stage,
        rfm.value_tier,
        dim.account_type,
        dim.region,
        value.revenue_12m,
        value.revenue_12m - value.margin_12m as cost_12m,
        value.margin_12m,
        value.orders_12m,
    from {{ ref('fct_customer_rfm') }} as rfm
    inner join {{ ref('fct_customer_value') }} as value
        on rfm.customer_key = value.customer_key
    inner join {{ ref('dim_customers') }} as dim
        on rfm.customer_key = dim.customer_key

),

unpivoted as (

    select 'rfm_segment' as segment_dimension, coalesce(rfm_segment, 'Not Scored') as segment_value, *,
    from customers
    union all
    select 'lifecycle_stage' as segment_dimension, lifecycle_stage as segment_value, *,
    from customers
    union all
    select 'value_tier' as segment_dimension, value_tier as segment_value, *,
    from customers
    union all
    select 'account_type' as segment_dimension, account_type as segment_value, *,
    from customers
    union all
    select 'region' as segment_dimension, region as segment_value, *,
    from customers

),

aggregated as (

    select
        segment_dimension,
        segment_value,
        count(*) as customers,
        count(*) filter (where orders_12m > 0) as buying_customers,
        cast(sum(orders_12m) as bigint) as orders_12m,
        sum(revenue_12m) as revenue_12m,
        sum(cost_12m) as cost_12m,
        sum(margin_12m) as margin_12m,
    from unpivoted
    group by segment_dimension, segment_value

),

final as (

    select
        segment_dimension || ':' || segment_value as segment_id,
        segment_dimension,
        segment_value,
        customers,
        buying_customers,
        orders_12m,
        revenue_12m,
        cost_12m,
        margin_12m,
        case when revenue_12m > 0 then margin_12m / revenue_12m end as margin_pct,
        revenue_12m / customers as revenue_per_customer,
        margin_12m / customers as margin_per_customer,
        case
            when sum(margin_12m) over (partition by segment_dimension) <> 0
                then margin_12m / sum(margin_12m) over (partition by segment_dimension)
        end as share_of_margin,
    from aggregated

)

select * from final
