-- Leads by source and month of creation: how many were worked, qualified, converted or disqualified, how fast
-- they got a first response, and the deals and won revenue they turned into.
with leads as (

    select * from {{ ref('stg_crm__leads') }}

),

lead_deals as (

    select
        lead_id,
        count(*) as opportunities,
        count(*) filter (where is_won) as won_opportunities,
        coalesce(sum(amount) filter (where is_won), 0) as won_amount,
    from {{ ref('fct_opportunities') }}
    where lead_id is not null
    group by lead_id

),

per_lead as (

    select
        leads.lead_id,
        leads.lead_source,
        cast(date_trunc('month', leads.created_at) as date) as created_month,
        leads.status,
        leads.first_response_at is not null as is_responded,
        leads.status in ('qualified', 'converted') or leads.converted_account_id is not null as is_qualified,
        leads.status = 'converted' or leads.converted_account_id is not null as is_converted,
        leads.status = 'disqualified' as is_disqualified,
        epoch(leads.first_response_at - leads.created_at) / 3600.0 as first_response_hours,
        coalesce(lead_deals.opportunities, 0) as opportunities,
        coalesce(lead_deals.won_opportunities, 0) as won_opportunities,
        coalesce(lead_deals.won_amount, 0) as won_amount,
    from leads
    left join lead_deals on leads.lead_id = lead_deals.lead_id

),

aggregated as (

    select
        lead_source,
        created_month,
        count(*) as leads,
        count(*) filter (where is_responded) as leads_responded,
        count(*) filter (where is_qualified) as leads_qualified,
        count(*) filter (where is_converted) as leads_converted,
        count(*) filter (where is_disqualified) as leads_disqualified,
        median(first_response_hours) as median_first_response_hours,
        sum(opportunities) as opportunities,
        sum(won_opportunities) as won_opportunities,
        sum(won_amount) as won_amount,
    from per_lead
    group by lead_source, created_month

),

final as (

    select
        concat_ws('|', lead_source, strftime(created_month, '%Y-%m')) as lead_source_row_id,
        lead_source,
        created_month,
        cast(leads as bigint) as leads,
        cast(leads_responded as bigint) as leads_responded,
        cast(leads_qualified as bigint) as leads_qualified,
        cast(leads_converted as bigint) as leads_converted,
        cast(leads_disqualified as bigint) as leads_disqualified,
        cast(leads_converted as double) / leads as conversion_rate,
        cast(median_first_response_hours as double) as median_first_response_hours,
        cast(opportunities as bigint) as opportunities,
        cast(won_opportunities as bigint) as won_opportunities,
        cast(won_amount as double) as won_amount,
    from aggregated

)

select * from final
