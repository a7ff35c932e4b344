-- Deals enhanced with everything the funnel slices by (fivetran's opportunity_enhanced): owner, team, region,
-- lead source, product line, customer, outcome flags, sales-cycle length and age. Archived deals are left out.
-- Stage order and outcome come from the installation's stages (crm.yaml, stg_settings__stages).
with opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}
    where not is_archived

),

users as (

    select * from {{ ref('stg_crm__users') }}

),

teams as (

    select * from {{ ref('stg_crm__teams') }}

),

leads as (

    select * from {{ ref('stg_crm__leads') }}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

customers as (

    select * from {{ ref('int_customers_resolved') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

stages as (

    select * from {{ ref('stg_settings__stages') }}

),

stage_history as (

    select
        history.opportunity_id,
        count(*) as stage_changes,
        max(stages.stage_order) as max_history_stage_order,
        max(history.changed_at) as last_stage_change_at,
    from {{ ref('stg_crm__opportunity_stage_history') }} as history
    left join stages on history.to_stage = stages.stage
    group by history.opportunity_id

),

joined as (

    select
        opportunities.opportunity_id,
        opportunities.opportunity_name,
        opportunities.account_id,
        coalesce(customers.customer_key, opportunities.account_id) as customer_key,
        opportunities.owner_user_id,
        users.full_name as owner_name,
        users.team_id,
        teams.team_name,
        coalesce(teams.region, '(none)') as region,
        opportunities.lead_id,
        coalesce(opportunities.lead_source, leads.lead_source, '(none)') as lead_source,
        coalesce(opportunities.campaign_id, leads.campaign_id) as campaign_id,
        opportunities.product_id,
        coalesce(products.product_line, '(none)') as product_line,
        opportunities.stage,
        stages.stage_order,
        opportunities.amount,
        opportunities.expected_close_date,
        opportunities.lost_reason,
        opportunities.created_at,
        -- a closed deal without closed_at (hand-edited records) is dated by its last update
        case
            when stages.is_closed then coalesce(opportunities.closed_at, opportunities.updated_at)
        end as closed_at,
        coalesce(stages.is_won, false) as is_won,
        coalesce(stages.is_lost, false) as is_lost,
        coalesce(stages.is_closed, false) as is_closed,
        coalesce(stage_history.stage_changes, 0) as stage_changes,
        stage_history.max_history_stage_order,
        stage_history.last_stage_change_at,
        as_of.as_of_date,
    from opportunities
    cross join as_of
    left join stages on opportunities.stage = stages.stage
    left join users on opportunities.owner_user_id = users.user_id
    left join teams on users.team_id = teams.team_id
    left join leads on opportunities.lead_id = leads.lead_id
    left join products on opportunities.product_id = products.product_id
    left join customers on opportunities.account_id = customers.account_id
    left join stage_history on opportunities.opportunity_id = stage_history.opportunity_id

),

final as (

    select
        opportunity_id,
        opportunity_name,
        account_id,
        customer_key,
        owner_user_id,
        owner_name,
        team_id,
        team_name,
        region,
        lead_id,
        lead_source,
        campaign_id,
        product_id,
        product_line,
        stage,
        cast(stage_order as bigint) as stage_order,
        -- the furthest funnel stage the deal reached (1 = the first open stage .. the won stage); every deal entered
        -- the funnel
        cast(greatest(1, coalesce(max_history_stage_order, 0), coalesce(stage_order, 0)) as bigint)
            as max_stage_order_reached,
        amount,
        expected_close_date,
        lost_reason,
        created_at,
        closed_at,
        cast(date_trunc('month', created_at) as date) as created_month,
        cast(date_trunc('month', closed_at) as date) as closed_month,
        is_won,
        is_lost,
        is_closed,
        cast(stage_changes as bigint) as stage_changes,
        -- calendar days from creation to close, for closed deals
        cast(case when is_closed then date_diff('day', cast(created_at as date), cast(closed_at as date)) end as bigint)
            as sales_cycle_days,
        -- calendar days the deal has lived: up to its close, or up to the as-of date while open
        cast(date_diff('day', cast(created_at as date), coalesce(cast(closed_at as date), as_of_date)) as bigint)
            as age_days,
        cast(case
            when not is_closed
                then date_diff('day', cast(coalesce(last_stage_change_at, created_at) as date), as_of_date)
        end as bigint) as days_in_current_stage,
    from joined

)

select * from final
