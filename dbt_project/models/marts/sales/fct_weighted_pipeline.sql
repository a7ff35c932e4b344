-- Open deals weighted by the historical win probability of their current stage: of the closed deals that
-- reached the stage, the share that was won (see the `stage_win_probability` docs); while no closed deal reached
-- the stage, the stage's default probability from crm.yaml. One row per open deal, to be summed by expected
-- close month, owner, team, region or stage.
with opportunities as (

    select * from {{ ref('fct_opportunities') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

open_stages as (

    select stage_order, stage, default_probability from {{ ref('stg_settings__stages') }}
    where not is_closed

),

stage_probabilities as (

    select
        open_stages.stage_order,
        any_value(open_stages.default_probability) as default_probability,
        count(*) filter (where opportunities.is_closed) as closed_deals_reached,
        count(*) filter (where opportunities.is_won) as won_deals_reached,
        cast(count(*) filter (where opportunities.is_won) as double)
            / nullif(count(*) filter (where opportunities.is_closed), 0) as stage_win_probability,
    from open_stages
    left join opportunities
        on opportunities.max_stage_order_reached >= open_stages.stage_order
    group by open_stages.stage_order

),

final as (

    select
        opportunities.opportunity_id,
        opportunities.opportunity_name,
        opportunities.account_id,
        opportunities.customer_key,
        opportunities.owner_user_id,
        opportunities.team_id,
        opportunities.region,
        opportunities.lead_source,
        opportunities.product_line,
        opportunities.stage,
        opportunities.stage_order,
        opportunities.expected_close_date,
        cast(date_trunc('month', opportunities.expected_close_date) as date) as expected_close_month,
        opportunities.expected_close_date < as_of.as_of_date as is_past_expected_close,
        opportunities.amount,
        cast(stage_probabilities.closed_deals_reached as bigint) as closed_deals_reached_stage,
        coalesce(stage_probabilities.stage_win_probability, stage_probabilities.default_probability, 0.0)
            as stage_win_probability,
        opportunities.amount
            * coalesce(stage_probabilities.stage_win_probability, stage_probabilities.default_probability, 0.0)
            as weighted_amount,
    from opportunities
    cross join as_of
    inner join stage_probabilities on opportunities.stage_order = stage_probabilities.stage_order
    where not opportunities.is_closed

)

select * from final
