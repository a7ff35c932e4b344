{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- opportunity_stage_history: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'opportunity_stage_history') }}

),

final as (

    select
        cast(stage_event_id as varchar) as stage_event_id,
        cast(opportunity_id as varchar) as opportunity_id,
        cast(from_stage as varchar) as from_stage,
        cast(to_stage as varchar) as to_stage,
        cast(changed_at as timestamp) as changed_at,
        cast(changed_by_user_id as varchar) as changed_by_user_id,
        _source,
        _ingested_at,
    from source

)

select * from final
