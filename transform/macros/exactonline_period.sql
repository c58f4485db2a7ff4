{#- 'YYYY-PP' for messages. -#}
{% macro exactonline_period_text(year, period) -%}
    ({{ exactonline_text(year) }} || '-' || lpad({{ exactonline_text(period) }}, 2, '0'))
{%- endmacro %}
