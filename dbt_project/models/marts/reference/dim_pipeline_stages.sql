-- The installation's pipeline stages (crm.yaml `stages`) in the order it lists them: what the portal's funnel
-- and stage pickers follow. One row per stage.
select
    stage,
    stage_position,
    stage_order,
    is_won,
    is_lost,
    is_closed,
    default_probability,
from {{ ref('stg_settings__stages') }}
