{#- The live rows of a stream: rows Exact deleted carry `_sdc_deleted_at` (a tombstone from
    sync/Deleted, or a row an ACTIVATE_VERSION retracted: docs/deletions.md). -#}
{% macro exactonline_live(table) -%}
    (select * from {{ source('exactonline', table) }} where _sdc_deleted_at is null)
{%- endmacro %}

{#- Streams the tap reads in full (ReceivablesList, the ageing lists, ReportingBalance, ...)
    have no deletion log: a row that leaves Exact's answer is retracted only by
    ACTIVATE_VERSION, which target-duckdb and pipelinewise-target-postgres ignore
    (docs/loaders.md). docs/deletions.md: "rows that vanished are those whose
    `_sdc_extracted_at` is older than the newest one of their division". A read takes seconds
    to minutes, so keep the rows within a window of the newest one. -#}
{% macro exactonline_latest_read(table) -%}
    (
        select *
        from (
            select
                src.*,
                max(src._sdc_extracted_at) over (partition by src.division) as _newest_read_at
            from {{ source('exactonline', table) }} as src
            where src._sdc_deleted_at is null
        ) as reads
        where _sdc_extracted_at >= {{ dbt.dateadd(
            'minute', -1 * var('exactonline__full_table_window_minutes') | int, '_newest_read_at') }}
    )
{%- endmacro %}
