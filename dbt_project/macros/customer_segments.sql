{#
    The standard named RFM segment from recency and frequency quintile scores (models/docs.md: rfm_segment).
    Every one of the 25 (r, f) combinations maps to exactly one segment.
#}
{% macro rfm_segment(r_score, f_score) -%}
    case
        when {{ r_score }} is null or {{ f_score }} is null then null
        when {{ r_score }} = 5 and {{ f_score }} >= 4 then 'Champions'
        when {{ r_score }} in (3, 4) and {{ f_score }} >= 4 then 'Loyal Customers'
        when {{ r_score }} >= 4 and {{ f_score }} in (2, 3) then 'Potential Loyalists'
        when {{ r_score }} = 5 and {{ f_score }} = 1 then 'New Customers'
        when {{ r_score }} = 4 and {{ f_score }} = 1 then 'Promising'
        when {{ r_score }} = 3 and {{ f_score }} = 3 then 'Need Attention'
        when {{ r_score }} = 3 and {{ f_score }} <= 2 then 'About To Sleep'
        when {{ r_score }} <= 2 and {{ f_score }} = 5 then 'Cannot Lose Them'
        when {{ r_score }} <= 2 and {{ f_score }} in (3, 4) then 'At Risk'
        when {{ r_score }} = 1 and {{ f_score }} = 1 then 'Lost'
        else 'Hibernating'
    end
{%- endmacro %}

{#
    Lifecycle stage on the as-of date (models/docs.md: lifecycle_stage). Arguments are date expressions;
    thresholds come from the project vars.
#}
{% macro lifecycle_stage(first_order_date, last_order_date, last_reactivation_date, as_of_date) -%}
    case
        when {{ last_order_date }} is null then 'prospect'
        when {{ as_of_date }} - {{ last_order_date }} > {{ var('churn_after_days') }} then 'churned'
        when {{ as_of_date }} - {{ last_order_date }} > {{ var('at_risk_after_days') }} then 'at_risk'
        when {{ as_of_date }} - {{ first_order_date }} < {{ var('new_customer_days') }} then 'new'
        when {{ as_of_date }} - {{ last_reactivation_date }} < {{ var('at_risk_after_days') }} then 'reactivated'
        else 'active'
    end
{%- endmacro %}
