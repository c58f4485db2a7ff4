{{ config(enabled=var('exactonline__using_profit_loss_overview')) }}
-- Proves: the result of the current and the previous year (and of the current period in both)
-- from the ledger lines equals Exact's ProfitLossOverview (result = revenue - costs over the P&L
-- accounts). Only the result is compared: it does not depend on how Exact splits revenue from
-- costs.
-- A failure usually means P&L lines missing or extra (see
-- general_ledger_by_period_equals_reporting_balance, which names the account and period), or
-- ProfitLossOverview read at another time than the lines (it is read in full once per
-- full_table_interval).
{% set differences %}
with exacts as (
    select division, 'current year' as figure, current_year as financial_year,
        cast(null as {{ dbt.type_int() }}) as financial_period, result_current_year as exact_result
    from {{ ref('stg_exactonline__profit_loss_overview') }}
    union all
    select division, 'current period', current_year, current_period, result_current_period
    from {{ ref('stg_exactonline__profit_loss_overview') }}
    union all
    select division, 'previous year', previous_year, null, result_previous_year
    from {{ ref('stg_exactonline__profit_loss_overview') }}
    union all
    select division, 'previous year period', previous_year, previous_year_period,
        result_previous_year_period
    from {{ ref('stg_exactonline__profit_loss_overview') }}
),

compared as (
    select
        exacts.*,
        coalesce((
            select sum(pl.result_amount)
            from {{ ref('profit_and_loss') }} as pl
            where pl.division = exacts.division
                and pl.financial_year = exacts.financial_year
                and (exacts.financial_period is null or pl.financial_period = exacts.financial_period)
        ), 0) as our_result
    from exacts
)

select
    compared.*,
    'division ' || {{ exactonline_text('division') }} || ', ' || figure || ' '
        || {{ exactonline_text('financial_year') }}
        || case when financial_period is null then '' else ' period ' || {{ exactonline_text('financial_period') }} end
        || ': result from the ledger ' || {{ exactonline_money('our_result') }}
        || ', ProfitLossOverview ' || {{ exactonline_money('exact_result') }}
        || ' (difference ' || {{ exactonline_money('our_result - exact_result') }} || ')' as difference
from compared
where abs(our_result - exact_result) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('year result vs ProfitLossOverview', differences) }}
