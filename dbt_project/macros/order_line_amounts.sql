{#
    Line revenue as the contract defines it (order_lines): quantity * unit_price * (1 - discount_pct / 100).
    Written once here so every model computes revenue the same way.
#}
{% macro line_revenue(quantity, unit_price, discount_pct) -%}
    ({{ quantity }} * {{ unit_price }} * (1 - {{ discount_pct }} / 100.0))
{%- endmacro %}
