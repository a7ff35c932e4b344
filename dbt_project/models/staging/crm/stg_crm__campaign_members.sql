{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- campaign_members: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'campaign_members') }}

),

final as (

    select
        cast(member_id as varchar) as member_id,
        cast(campaign_id as varchar) as campaign_id,
        cast(contact_id as varchar) as contact_id,
        cast(lead_id as varchar) as lead_id,
        cast(status as varchar) as status,
        cast(added_at as timestamp) as added_at,
        cast(responded_at as timestamp) as responded_at,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
