{#
    Normalised match keys for identity resolution (int_customers_resolved). Each returns null when the
    input carries no usable information, so an empty value never matches another empty value.
#}

{# Email: trimmed and lowercased; only values that look like an address (something@something.tld). #}
{% macro normalise_email(column) -%}
    case
        when regexp_matches(lower(trim({{ column }})), '^[^@\s]+@[^@\s]+\.[^@\s]+$')
            then lower(trim({{ column }}))
    end
{%- endmacro %}

{#
    Phone: digits only, international prefix (00 or +) and a trunk 0 dropped, compared on the last
    9 digits, so "+49 30 1234567", "0049-30-1234567" and "030 1234567" agree. Fewer than 7 digits is no key.
#}
{% macro normalise_phone(column) -%}
    case
        when length(regexp_replace(coalesce({{ column }}, ''), '[^0-9]', '', 'g')) >= 7
            then right(regexp_replace({{ column }}, '[^0-9]', '', 'g'), 9)
    end
{%- endmacro %}

{#
    Name: lowercase, accents stripped, punctuation to spaces, tokens sorted and joined with one space,
    so "Müller, Jörg", "jorg muller" and "MULLER Jörg" agree.
#}
{% macro normalise_name(column) -%}
    nullif(
        array_to_string(
            list_sort(
                list_filter(
                    string_split(regexp_replace(strip_accents(lower(coalesce({{ column }}, ''))), '[^a-z0-9]+', ' ', 'g'), ' '),
                    lambda token: token <> ''
                )
            ),
            ' '
        ),
        ''
    )
{%- endmacro %}

{# Free text such as a city: lowercase, accents stripped, whitespace collapsed. #}
{% macro normalise_text(column) -%}
    nullif(trim(regexp_replace(strip_accents(lower(coalesce({{ column }}, ''))), '\s+', ' ', 'g')), '')
{%- endmacro %}
