{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- accounts: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'accounts') }}

),

final as (

    select
        cast(account_id as varchar) as account_id,
        cast(account_name as varchar) as account_name,
        cast(account_type as varchar) as account_type,
        cast(industry as varchar) as industry,
        cast(employees as bigint) as employees,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(city as varchar) as city,
        cast(country as varchar) as country,
        cast(region as varchar) as region,
        cast(owner_user_id as varchar) as owner_user_id,
        cast(source_system as varchar) as source_system,
        cast(created_at as timestamp) as created_at,
        cast(is_archived as boolean) as is_archived,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
