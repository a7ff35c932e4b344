{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- tasks: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'tasks') }}

),

final as (

    select
        cast(task_id as varchar) as task_id,
        cast(owner_user_id as varchar) as owner_user_id,
        cast(account_id as varchar) as account_id,
        cast(opportunity_id as varchar) as opportunity_id,
        cast(subject as varchar) as subject,
        cast(task_type as varchar) as task_type,
        cast(status as varchar) as status,
        cast(due_at as timestamp) as due_at,
        cast(reminder_at as timestamp) as reminder_at,
        cast(completed_at as timestamp) as completed_at,
        cast(created_at as timestamp) as created_at,
        cast(is_archived as boolean) as is_archived,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
