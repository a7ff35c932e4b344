{#
    Use a model's `+schema` verbatim (staging, intermediate, marts) instead of dbt's default
    `<target_schema>_<custom_schema>`, so the warehouse reads `marts.dim_customers`, not `main_marts.dim_customers`.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
