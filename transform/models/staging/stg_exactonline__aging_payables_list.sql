{{ config(enabled=var('exactonline__using_ageing_lists')) }}
-- read/financial/AgingPayablesList, staged (macros/exactonline_sides.sql).
{{ exactonline_stage_ageing_list('aging_payables_list') }}
