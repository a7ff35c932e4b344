-- Win rate, won/lost counts and amounts and sales-cycle length of the deals closed in each month, overall and by
-- rep, team, region, lead source and product line (long format). Win rate = won / (won + lost), see `win_rate`.
{%- set dimensions = deal_dimensions() %}

with closed_deals as (

    select * from {{ ref('fct_opportunities') }}
    where is_closed

),

deal_dimensions as (

    {% for dimension, expression in dimensions.items() %}
    select
        opportunity_id,
        closed_month,
        '{{ dimension }}' as dimension,
        {{ expression }} as dimension_value,
        is_won,
        amount,
        sales_cycle_days,
    from closed_deals
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

counted as (

    select
        closed_month,
        dimension,
        dimension_value,
        count(*) as deals_closed,
        count(*) filter (where is_won) as deals_won,
        count(*) filter (where not is_won) as deals_lost,
        coalesce(sum(amount) filter (where is_won), 0) as won_amount,
        coalesce(sum(amount) filter (where not is_won), 0) as lost_amount,
        avg(sales_cycle_days) as avg_sales_cycle_days,
        avg(sales_cycle_days) filter (where is_won) as avg_won_cycle_days,
    from deal_dimensions
    group by all

),

final as (

    select
        concat_ws('|', strftime(closed_month, '%Y-%m'), dimension, dimension_value) as win_rate_row_id,
        closed_month,
        dimension,
        dimension_value,
        cast(deals_closed as bigint) as deals_closed,
        cast(deals_won as bigint) as deals_won,
        cast(deals_lost as bigint) as deals_lost,
        cast(deals_won as double) / deals_closed as win_rate,
        cast(won_amount as double) as won_amount,
        cast(lost_amount as double) as lost_amount,
        cast(avg_sales_cycle_days as double) as avg_sales_cycle_days,
        cast(avg_won_cycle_days as double) as avg_won_cycle_days,
    from counted

)

select * from final
