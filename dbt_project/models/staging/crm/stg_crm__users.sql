{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- users: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'users') }}

),

final as (

    select
        cast(user_id as varchar) as user_id,
        cast(full_name as varchar) as full_name,
        cast(email as varchar) as email,
        cast(role as varchar) as role,
        cast(team_id as varchar) as team_id,
        cast(hired_at as date) as hired_at,
        cast(is_active as boolean) as is_active,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
