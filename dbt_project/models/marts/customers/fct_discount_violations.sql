-- Order lines discounted below the product's floor (discount_pct > max_discount_pct), with the rep who
-- owns the order and what the excess discount cost. One row per offending order line.
with lines as (

    select * from {{ ref('int_order_lines_enriched') }}
    where is_below_floor

),

users as (

    select * from {{ ref('stg_crm__users') }}

),

teams as (

    select * from {{ ref('stg_crm__teams') }}

),

final as (

    select
        lines.order_line_id,
        lines.order_id,
        lines.order_date,
        lines.order_status,
        lines.sales_channel,
        lines.customer_key,
        lines.account_id,
        lines.owner_user_id,
        users.full_name as owner_name,
        users.team_id,
        teams.team_name,
        teams.region as team_region,
        lines.product_id,
        lines.product_line,
        lines.quantity,
        lines.list_price,
        lines.unit_price,
        lines.discount_pct,
        lines.max_discount_pct,
        lines.discount_pct - lines.max_discount_pct as excess_discount_pct,
        lines.revenue,
        -- what the discount beyond the floor gave away on completed orders
        case
            when lines.order_status = 'completed'
                then lines.quantity * lines.unit_price * (lines.discount_pct - lines.max_discount_pct) / 100.0
            else 0
        end as excess_discount_amount,
    from lines
    left join users
        on lines.owner_user_id = users.user_id
    left join teams
        on users.team_id = teams.team_id

)

select * from final
