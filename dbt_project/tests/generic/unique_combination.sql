{#
    The combination of `columns` is unique in the model (a composite primary key). Written here because the
    project uses no packages (nothing is downloaded at build time).
#}
{% test unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as occurrences,
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
