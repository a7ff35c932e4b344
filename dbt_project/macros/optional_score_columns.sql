{#
    Model scores join the customer 360 only once the ML assets have written them. This macro returns the
    select list for an optional relation: each wanted column when the relation exists and has it, else a
    typed null, so the 360's columns (and its enforced contract) are the same before and after the first
    scoring run. `wanted` is a list of (source column, output name, type).
#}
{% macro optional_score_columns(relation, alias, wanted) -%}
    {%- set available = [] -%}
    {%- if relation is not none and execute -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do available.append(column.name | lower) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- for source_column, output_name, data_type in wanted %}
        {% if source_column in available -%}
            cast({{ alias }}.{{ source_column }} as {{ data_type }}) as {{ output_name }},
        {%- else -%}
            cast(null as {{ data_type }}) as {{ output_name }},
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}

{# The relation scores.<name> in the target database, or none when it does not exist yet. #}
{% macro scores_relation(name) -%}
    {{ return(adapter.get_relation(database=target.database, schema='scores', identifier=name)) }}
{%- endmacro %}
