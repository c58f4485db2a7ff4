select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as gl_scheme_id,
    {{ exactonline_code('code') }} as gl_scheme_code,
    description as gl_scheme_description,
    cast(main as {{ dbt.type_int() }}) = 1 as is_main
from {{ exactonline_live('gl_schemes') }} as schemes
