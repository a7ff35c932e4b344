-- Segments per customer on the as-of date: RFM measures, quintile scores and the named RFM segment,
-- lifecycle stage and value tier (definitions in models/docs.md). One row per customer_key; customers
-- without a completed order have no RFM scores and are `prospect`s.
with summary as (

    select * from {{ ref('int_customer_activity_summary') }}

),

scored as (

    select
        customer_key,
        ntile(5) over (order by recency_days desc, customer_key) as r_score,
        ntile(5) over (order by window_orders, customer_key) as f_score,
        ntile(5) over (order by window_revenue, customer_key) as m_score,
    from summary
    where last_order_date is not null

),

revenue_ranked as (

    select
        customer_key,
        percent_rank() over (order by window_revenue) as revenue_percentile,
    from summary
    where window_revenue > 0

),

final as (

    select
        summary.customer_key,
        summary.as_of_date,
        summary.first_order_date,
        summary.last_order_date,
        summary.recency_days,
        summary.window_orders as frequency,
        summary.window_revenue as monetary,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        cast(scored.r_score as varchar) || cast(scored.f_score as varchar) || cast(scored.m_score as varchar)
            as rfm_cell,
        {{ rfm_segment('scored.r_score', 'scored.f_score') }} as rfm_segment,
        {{ lifecycle_stage('summary.first_order_date', 'summary.last_order_date',
                           'summary.last_reactivation_date', 'summary.as_of_date') }} as lifecycle_stage,
        revenue_ranked.revenue_percentile,
        case
            when revenue_ranked.revenue_percentile >= 0.9 then 'platinum'
            when revenue_ranked.revenue_percentile >= 0.7 then 'gold'
            when revenue_ranked.revenue_percentile >= 0.4 then 'silver'
            when revenue_ranked.revenue_percentile is not null then 'bronze'
            else 'none'
        end as value_tier,
    from summary
    left join scored
        on summary.customer_key = scored.customer_key
    left join revenue_ranked
        on summary.customer_key = revenue_ranked.customer_key

)

select * from final
