{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- interactions: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'interactions') }}

),

final as (

    select
        cast(interaction_id as varchar) as interaction_id,
        cast(occurred_at as timestamp) as occurred_at,
        cast(channel as varchar) as channel,
        cast(direction as varchar) as direction,
        cast(account_id as varchar) as account_id,
        cast(contact_id as varchar) as contact_id,
        cast(lead_id as varchar) as lead_id,
        cast(user_id as varchar) as user_id,
        cast(duration_seconds as bigint) as duration_seconds,
        cast(outcome as varchar) as outcome,
        _source,
        _ingested_at,
    from source

)

select * from final
