-- Why deals were lost: lost deals and amount per reason, by close month, overall and by rep, team, region, lead
-- source and product line (long format), with each reason's share of the losses in its slice.
{%- set dimensions = deal_dimensions() %}

with lost_deals as (

    select * from {{ ref('fct_opportunities') }}
    where is_lost

),

deal_dimensions as (

    {% for dimension, expression in dimensions.items() %}
    select
        opportunity_id,
        closed_month,
        '{{ dimension }}' as dimension,
        {{ expression }} as dimension_value,
        coalesce(lost_reason, '(none)') as lost_reason,
        amount,
    from lost_deals
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

counted as (

    select
        closed_month,
        dimension,
        dimension_value,
        lost_reason,
        count(*) as deals_lost,
        sum(amount) as lost_amount,
    from deal_dimensions
    group by all

),

final as (

    select
        concat_ws('|', strftime(closed_month, '%Y-%m'), dimension, dimension_value, lost_reason) as lost_reason_row_id,
        closed_month,
        dimension,
        dimension_value,
        lost_reason,
        cast(deals_lost as bigint) as deals_lost,
        cast(lost_amount as double) as lost_amount,
        cast(deals_lost as double)
            / sum(deals_lost) over (partition by closed_month, dimension, dimension_value) as share_of_lost_deals,
    from counted

)

select * from final
