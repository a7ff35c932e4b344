{#
    Line revenue as the contract defines it (order_lines): the line's net total `line_amount` when the export
    gives one (shop and ERP exports), else quantity * unit_price * (1 - discount_pct / 100).
    Written once here so every model computes revenue the same way.
#}
{% macro line_revenue(quantity, unit_price, discount_pct, line_amount) -%}
    coalesce({{ line_amount }}, {{ quantity }} * {{ unit_price }} * (1 - {{ discount_pct }} / 100.0))
{%- endmacro %}
