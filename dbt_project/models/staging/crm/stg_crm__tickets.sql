{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- tickets: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'tickets') }}

),

final as (

    select
        cast(ticket_id as varchar) as ticket_id,
        cast(account_id as varchar) as account_id,
        cast(contact_id as varchar) as contact_id,
        cast(assigned_user_id as varchar) as assigned_user_id,
        cast(priority as varchar) as priority,
        cast(channel as varchar) as channel,
        cast(category as varchar) as category,
        cast(status as varchar) as status,
        cast(created_at as timestamp) as created_at,
        cast(first_response_at as timestamp) as first_response_at,
        cast(resolved_at as timestamp) as resolved_at,
        cast(sla_first_response_hours as double) as sla_first_response_hours,
        cast(sla_resolution_hours as double) as sla_resolution_hours,
        cast(satisfaction_score as bigint) as satisfaction_score,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
