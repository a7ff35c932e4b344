{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='snapshot_date',
        on_schema_change='append_new_columns',
    )
}}
-- The open pipeline as it stood at the end of each day, per rep and stage, reconstructed from the stage history:
-- a deal counts in the stage it was in at the end of the day while that stage was open. Incremental: a run
-- rebuilds only the days after the last stored one, minus a short lookback for late-arriving stage changes,
-- so its cost grows with the new days, not with the history. Amounts are the deals' current amounts.
{%- set lookback_days = var('pipeline_snapshot_lookback_days', 3) %}

with open_stage_spells as (

    select
        opportunity_id,
        stage,
        stage_order,
        cast(entered_at as date) as first_day,
        -- the deal is in the stage at the end of day d when it entered by then and left only after d
        cast(exited_at as date) as exit_day,
    from {{ ref('fct_deal_stages') }}
    where not is_closed_stage

),

opportunities as (

    select opportunity_id, owner_user_id, team_id, region, amount from {{ ref('fct_opportunities') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

bounds as (

    select
        {% if is_incremental() %}
        coalesce(
            (select max(snapshot_date) from {{ this }}) - {{ lookback_days }} + 1,
            (select min(first_day) from open_stage_spells)
        ) as start_day,
        {% else %}
        (select min(first_day) from open_stage_spells) as start_day,
        {% endif %}
        as_of.as_of_date as end_day,
    from as_of

),

days as (

    select cast(unnest(generate_series(bounds.start_day, bounds.end_day, interval 1 day)) as date) as snapshot_date
    from bounds
    where bounds.start_day <= bounds.end_day

),

deal_days as (

    select
        days.snapshot_date,
        open_stage_spells.opportunity_id,
        open_stage_spells.stage,
        open_stage_spells.stage_order,
    from days
    inner join open_stage_spells
        on days.snapshot_date >= open_stage_spells.first_day
        and (open_stage_spells.exit_day is null or days.snapshot_date < open_stage_spells.exit_day)

),

aggregated as (

    select
        deal_days.snapshot_date,
        coalesce(opportunities.owner_user_id, '(none)') as owner_user_id,
        any_value(opportunities.team_id) as team_id,
        any_value(opportunities.region) as region,
        deal_days.stage,
        deal_days.stage_order,
        count(*) as open_deals,
        sum(opportunities.amount) as open_amount,
    from deal_days
    inner join opportunities on deal_days.opportunity_id = opportunities.opportunity_id
    group by deal_days.snapshot_date, coalesce(opportunities.owner_user_id, '(none)'), deal_days.stage, deal_days.stage_order

),

final as (

    select
        concat_ws('|', strftime(snapshot_date, '%Y-%m-%d'), owner_user_id, stage) as snapshot_row_id,
        snapshot_date,
        owner_user_id,
        team_id,
        region,
        stage,
        cast(stage_order as bigint) as stage_order,
        cast(open_deals as bigint) as open_deals,
        cast(open_amount as double) as open_amount,
    from aggregated

)

select * from final
