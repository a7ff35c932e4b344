-- Stage-to-stage conversion of the deals created in each month, overall and by rep, team, region, lead source
-- and product line (long format: `dimension`, `dimension_value`). A deal "reached" a stage when the furthest
-- stage it got to is that stage or a later one (see the `deal_reached_stage` docs). Counts add up across months.
{%- set dimensions = deal_dimensions() %}

with opportunities as (

    select * from {{ ref('fct_opportunities') }}

),

deal_dimensions as (

    {% for dimension, expression in dimensions.items() %}
    select
        opportunity_id,
        created_month,
        '{{ dimension }}' as dimension,
        {{ expression }} as dimension_value,
        max_stage_order_reached,
        stage_order,
        is_lost,
        is_closed,
    from opportunities
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

funnel_steps as (

    -- each open stage of crm.yaml and the stage after it in funnel order (the won stage after the last open one)
    select * from (
        select
            stage_order as from_stage_order,
            stage as from_stage,
            lead(stage) over (order by stage_order) as to_stage,
            is_closed,
        from {{ ref('stg_settings__stages') }}
        where stage_order is not null
    )
    where not is_closed

),

counted as (

    select
        deal_dimensions.created_month,
        deal_dimensions.dimension,
        deal_dimensions.dimension_value,
        funnel_steps.from_stage_order,
        funnel_steps.from_stage,
        funnel_steps.to_stage,
        count(*) filter (where deal_dimensions.max_stage_order_reached >= funnel_steps.from_stage_order)
            as deals_entered,
        count(*) filter (where deal_dimensions.max_stage_order_reached >= funnel_steps.from_stage_order + 1)
            as deals_converted,
        count(*) filter (
            where deal_dimensions.is_lost and deal_dimensions.max_stage_order_reached = funnel_steps.from_stage_order
        ) as deals_lost_at_stage,
        count(*) filter (
            where not deal_dimensions.is_closed and deal_dimensions.stage_order = funnel_steps.from_stage_order
        ) as deals_open_at_stage,
    from deal_dimensions
    cross join funnel_steps
    group by all

),

final as (

    select
        concat_ws('|', strftime(created_month, '%Y-%m'), dimension, dimension_value, from_stage) as funnel_row_id,
        created_month,
        dimension,
        dimension_value,
        cast(from_stage_order as bigint) as from_stage_order,
        from_stage,
        to_stage,
        cast(deals_entered as bigint) as deals_entered,
        cast(deals_converted as bigint) as deals_converted,
        cast(deals_lost_at_stage as bigint) as deals_lost_at_stage,
        cast(deals_open_at_stage as bigint) as deals_open_at_stage,
        cast(deals_converted as double) / nullif(deals_entered, 0) as conversion_rate,
    from counted

)

select * from final
