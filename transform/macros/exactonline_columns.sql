{#- Typing helpers for the staging models: the same SQL on dbt-duckdb and dbt-postgres.
    target-duckdb loads GUIDs as varchar, whole numbers as hugeint, amounts as double;
    target-postgres loads uuid, bigint and numeric (docs/loaders.md). -#}

{% macro exactonline_id(column) -%}
    lower(cast({{ column }} as {{ dbt.type_string() }}))
{%- endmacro %}

{#- Exact pads codes with spaces (account codes right-aligned in 18 characters). -#}
{% macro exactonline_code(column) -%}
    nullif(trim(cast({{ column }} as {{ dbt.type_string() }})), '')
{%- endmacro %}

{#- Exact sends amounts as Edm.Double; decimals make sums exact (a cent stays a cent). -#}
{% macro exactonline_amount(column) -%}
    cast({{ column }} as decimal(28, 6))
{%- endmacro %}

{% macro exactonline_int(column) -%}
    cast({{ column }} as {{ dbt.type_int() }})
{%- endmacro %}

{% macro exactonline_bigint(column) -%}
    cast({{ column }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{#- A date is midnight on Exact's clock and lands as such (docs/exact-clock.md, "Dates keep
    their day"): casting it to a date keeps its day. -#}
{% macro exactonline_date(column) -%}
    cast({{ column }} as date)
{%- endmacro %}

{#- Exact's age groups (AgingReceivablesList / AgingPayablesList: "<= 30", "31 - 60",
    "61 - 90", "> 90" days since the invoice date; docs/fake-books.md). An item dated after the
    as-of date counts as group 1, as in the fake. -#}
{% macro exactonline_age_group(days) -%}
    case
        when {{ days }} <= 30 then 1
        when {{ days }} <= 60 then 2
        when {{ days }} <= 90 then 3
        else 4
    end
{%- endmacro %}

{% macro exactonline_ageing_as_of_date() -%}
    {%- if var('exactonline__ageing_as_of_date') -%}
        cast('{{ var("exactonline__ageing_as_of_date") }}' as date)
    {%- else -%}
        cast({{ dbt.current_timestamp() }} as date)
    {%- endif -%}
{%- endmacro %}

{#- An entry of Exact's year-end closing (TransactionLines.Type 320-328: e.g. 326 "Year end net
    p/l to balance sheet", 327 "Year end closing balance", 328 "Year start opening balance").
    They restate what the running balances already give, so balances and the reconciliation with
    ReportingBalance leave them out: the figures are the same whether or not a year was closed. -#}
{% macro exactonline_is_year_end_entry(type_column) -%}
    coalesce({{ exactonline_int(type_column) }} between 320 and 328, false)
{%- endmacro %}
