{{ config(enabled=var('exactonline__using_ageing_lists')) }}
-- read/financial/AgingReceivablesList, staged (macros/exactonline_sides.sql).
{{ exactonline_stage_ageing_list('aging_receivables_list') }}
