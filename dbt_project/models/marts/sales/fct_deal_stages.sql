-- One row per stage a deal passed through (fivetran's deal_stages): each stage-change event opens a stage,
-- the deal's next event closes it. Archived deals are left out, as in every sales mart.
with history as (

    select * from {{ ref('stg_crm__opportunity_stage_history') }}

),

opportunities as (

    select opportunity_id from {{ ref('stg_crm__opportunities') }}
    where not is_archived

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

stages as (

    select * from {{ ref('stg_settings__stages') }}

),

ordered as (

    select
        history.stage_event_id,
        history.opportunity_id,
        history.from_stage,
        history.to_stage as stage,
        history.changed_at as entered_at,
        history.changed_by_user_id,
        lead(history.changed_at) over deal_events as exited_at,
        lead(history.to_stage) over deal_events as next_stage,
        row_number() over deal_events as stage_sequence,
    from history
    inner join opportunities
        on history.opportunity_id = opportunities.opportunity_id
    window deal_events as (partition by history.opportunity_id order by history.changed_at, history.stage_event_id)

),

final as (

    select
        ordered.stage_event_id,
        ordered.opportunity_id,
        cast(ordered.stage_sequence as bigint) as stage_sequence,
        ordered.stage,
        stages.stage_order,
        ordered.from_stage,
        ordered.entered_at,
        ordered.exited_at,
        ordered.next_stage,
        coalesce(stages.is_closed, false) as is_closed_stage,
        ordered.exited_at is null as is_current_stage,
        -- closed stages are terminal: no time in stage; an open current stage counts up to the end of the as-of day
        case
            when stages.is_closed then null
            else round(
                epoch(coalesce(ordered.exited_at, cast(as_of.as_of_date + interval 1 day as timestamp)) - ordered.entered_at)
                / 86400.0, 4)
        end as days_in_stage,
        ordered.changed_by_user_id,
    from ordered
    cross join as_of
    left join stages on ordered.stage = stages.stage

)

select * from final
