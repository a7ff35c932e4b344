-- The installation's pipeline stages (crm.yaml `stages`): funnel order, won/lost flags, default probability.
select
    cast(stage as varchar) as stage,
    cast(stage_position as bigint) as stage_position,
    cast(stage_order as bigint) as stage_order,
    cast(is_won as boolean) as is_won,
    cast(is_lost as boolean) as is_lost,
    cast(is_won or is_lost as boolean) as is_closed,
    cast(default_probability as double) as default_probability,
from {{ source('settings', 'stages') }}
