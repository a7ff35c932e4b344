-- Customer 360: one row per customer joining identity, value, RFM/lifecycle/tier, receivables, service,
-- interactions, open deals, contracts and - once the ML assets have written them - model scores.
{{ config(materialized='view') }}
{%- set churn_scores = scores_relation('churn_scores') %}
{%- set clv_scores = scores_relation('clv_scores') %}
with as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

resolved as (

    select * from {{ ref('int_customers_resolved') }}

),

tickets as (

    select
        resolved.customer_key,
        count(*) filter (where tickets.status in ('open', 'pending')) as open_tickets,
        count(*) filter (where tickets.created_at > as_of.as_of_date - 365) as tickets_12m,
        avg(tickets.satisfaction_score) filter (where tickets.created_at > as_of.as_of_date - 365)
            as avg_satisfaction_12m,
        max(tickets.created_at) as last_ticket_at,
    from {{ ref('stg_crm__tickets') }} as tickets
    inner join resolved
        on tickets.account_id = resolved.account_id
    cross join as_of
    where cast(tickets.created_at as date) <= as_of.as_of_date
    group by resolved.customer_key

),

opportunities as (

    select
        resolved.customer_key,
        count(*) filter (where not coalesce(stages.is_closed, false)) as open_deals,
        coalesce(sum(opportunities.amount) filter (where not coalesce(stages.is_closed, false)), 0)
            as open_pipeline_amount,
        count(*) filter (where stages.is_won) as won_deals,
    from {{ ref('stg_crm__opportunities') }} as opportunities
    inner join resolved
        on opportunities.account_id = resolved.account_id
    left join {{ ref('stg_settings__stages') }} as stages
        on opportunities.stage = stages.stage
    where not opportunities.is_archived
    group by resolved.customer_key

),

contracts as (

    select
        resolved.customer_key,
        count(*) filter (where contracts.status = 'active' and contracts.end_date >= as_of.as_of_date)
            as active_contracts,
        coalesce(sum(contracts.annual_value) filter (
            where contracts.status = 'active' and contracts.end_date >= as_of.as_of_date
        ), 0) as active_contract_value,
        min(contracts.end_date) filter (where contracts.status = 'active' and contracts.end_date >= as_of.as_of_date)
            as next_contract_end_date,
    from {{ ref('stg_crm__contracts') }} as contracts
    inner join resolved
        on contracts.account_id = resolved.account_id
    cross join as_of
    group by resolved.customer_key

),

final as (

    select
        customers.customer_key,
        as_of.as_of_date,
        customers.customer_name,
        customers.account_type,
        customers.industry,
        customers.city,
        customers.country,
        customers.region,
        customers.owner_user_id,
        customers.owner_name,
        customers.team_id,
        customers.team_name,
        customers.accounts_in_group,
        customers.account_ids,
        customers.is_archived,
        customers.created_at,
        value.first_order_date,
        value.last_order_date,
        value.lifetime_orders,
        value.lifetime_revenue,
        value.lifetime_margin,
        value.revenue_12m,
        value.margin_12m,
        value.historical_clv,
        value.receivables_amount,
        value.overdue_amount,
        value.max_days_overdue,
        rfm.recency_days,
        rfm.frequency,
        rfm.monetary,
        rfm.r_score,
        rfm.f_score,
        rfm.m_score,
        rfm.rfm_segment,
        rfm.lifecycle_stage,
        rfm.value_tier,
        coalesce(tickets.open_tickets, 0) as open_tickets,
        coalesce(tickets.tickets_12m, 0) as tickets_12m,
        tickets.avg_satisfaction_12m,
        tickets.last_ticket_at,
        summary.last_interaction_at,
        as_of.as_of_date - cast(summary.last_interaction_at as date) as days_since_last_interaction,
        summary.interactions_90d,
        coalesce(opportunities.open_deals, 0) as open_deals,
        coalesce(opportunities.open_pipeline_amount, 0) as open_pipeline_amount,
        coalesce(opportunities.won_deals, 0) as won_deals,
        coalesce(contracts.active_contracts, 0) as active_contracts,
        coalesce(contracts.active_contract_value, 0) as active_contract_value,
        contracts.next_contract_end_date,
        {{ optional_score_columns(churn_scores, 'churn_scores', [
            ('churn_probability', 'churn_probability', 'double'),
            ('risk_band', 'churn_risk_band', 'varchar'),
            ('model_version', 'churn_model_version', 'varchar'),
        ]) }}
        {{ optional_score_columns(clv_scores, 'clv_scores', [
            ('predicted_clv', 'predicted_clv', 'double'),
            ('model_version', 'clv_model_version', 'varchar'),
        ]) }}
    from {{ ref('dim_customers') }} as customers
    cross join as_of
    inner join {{ ref('fct_customer_value') }} as value
        on customers.customer_key = value.customer_key
    inner join {{ ref('fct_customer_rfm') }} as rfm
        on customers.customer_key = rfm.customer_key
    inner join {{ ref('int_customer_activity_summary') }} as summary
        on customers.customer_key = summary.customer_key
    left join tickets
        on customers.customer_key = tickets.customer_key
    left join opportunities
        on customers.customer_key = opportunities.customer_key
    left join contracts
        on customers.customer_key = contracts.customer_key
    {% if churn_scores is not none %}
    left join {{ churn_scores }} as churn_scores
        on customers.customer_key = churn_scores.customer_key
    {% endif %}
    {% if clv_scores is not none %}
    left join {{ clv_scores }} as clv_scores
        on customers.customer_key = clv_scores.customer_key
    {% endif %}

)

select * from final
