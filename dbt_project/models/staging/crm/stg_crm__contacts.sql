{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- contacts: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'contacts') }}

),

final as (

    select
        cast(contact_id as varchar) as contact_id,
        cast(account_id as varchar) as account_id,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(job_title as varchar) as job_title,
        cast(is_primary as boolean) as is_primary,
        cast(created_at as timestamp) as created_at,
        cast(is_archived as boolean) as is_archived,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
