{#- One row per combination of columns (staging keys are unique per division, not alone). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    select {{ combination_of_columns | join(', ') }}, count(*) as rows_with_this_key
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{#- A reconciliation test: `differences` selects one row per difference, with a `difference`
    text naming division, account and period. dbt only reports how many rows a test returned,
    so the first rows are also written to the log, where the person running `dbt build` sees
    what differs. -#}
{% macro exactonline_reconciliation(title, differences) %}
    {%- if execute and flags.WHICH in ('test', 'build') -%}
        {%- set found = run_query('select difference from (' ~ differences ~ ') as d order by 1 limit 21') -%}
        {%- for row in found.rows[:20] -%}
            {{ log('RECONCILIATION ' ~ title ~ ': ' ~ row[0], info=True) }}
        {%- endfor -%}
        {%- if found.rows | length > 20 -%}
            {{ log('RECONCILIATION ' ~ title ~ ': ... more differences in the stored failures', info=True) }}
        {%- endif -%}
    {%- endif -%}
    {{ differences }}
{% endmacro %}

{#- An amount as text in messages, in cents. -#}
{% macro exactonline_money(expression) -%}
    coalesce(cast(cast({{ expression }} as decimal(18, 2)) as {{ dbt.type_string() }}), 'none')
{%- endmacro %}

{#- A figure as text in messages. -#}
{% macro exactonline_text(expression) -%}
    coalesce(cast({{ expression }} as {{ dbt.type_string() }}), 'none')
{%- endmacro %}
