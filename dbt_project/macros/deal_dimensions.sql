{#
    The slices the funnel, win-rate and lost-reason marts are cut by (long format: `dimension`,
    `dimension_value`): dimension name -> SQL expression over marts.fct_opportunities. Defined once so the
    three marts always offer the same slices.
#}
{% macro deal_dimensions() -%}
    {{ return({
        'all': "'all'",
        'owner': "coalesce(owner_user_id, '(none)')",
        'team': "coalesce(team_id, '(none)')",
        'region': 'region',
        'lead_source': 'lead_source',
        'product_line': 'product_line',
    }) }}
{%- endmacro %}
