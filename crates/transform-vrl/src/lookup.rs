//! `get_lookup(table, key)`: the row of `key` in a lookup table another
//! component filled ([`sluice_core::lookup`]; the `onepassword_users`
//! source publishes `1password.users`, its users by id), or `null` when the
//! table or the key is unknown, so a program that enriches with it works
//! unchanged where nothing fills the table.

use vrl::compiler::prelude::*;

/// The function.
#[derive(Clone, Copy, Debug)]
pub struct GetLookup;

const PARAMETERS: &[Parameter] = &[
    Parameter::required("table", kind::BYTES, "The table's name."),
    Parameter::required("key", kind::ANY, "The key (a string); anything else gives null."),
];

impl Function for GetLookup {
    fn identifier(&self) -> &'static str {
        "get_lookup"
    }

    fn usage(&self) -> &'static str {
        "The row of the key in a lookup table a source publishes (1password.users: the users inventory by user id), or null."
    }

    fn category(&self) -> &'static str {
        "Enrich"
    }

    fn return_kind(&self) -> u16 {
        kind::ANY
    }

    fn examples(&self) -> &'static [Example] {
        &[]
    }

    fn parameters(&self) -> &'static [Parameter] {
        PARAMETERS
    }

    fn compile(
        &self,
        _state: &state::TypeState,
        _ctx: &mut FunctionCompileContext,
        arguments: ArgumentList,
    ) -> Compiled {
        let table = arguments.required("table");
        let key = arguments.required("key");
        Ok(LookupCall { table, key }.as_expr())
    }
}

#[derive(Debug, Clone)]
struct LookupCall {
    table: Box<dyn Expression>,
    key: Box<dyn Expression>,
}

impl FunctionExpression for LookupCall {
    fn resolve(&self, ctx: &mut Context) -> Resolved {
        let table = self.table.resolve(ctx)?;
        let key = self.key.resolve(ctx)?;
        let (Value::Bytes(_) | Value::String(_), Value::Bytes(_) | Value::String(_)) =
            (&table, &key)
        else {
            return Ok(Value::Null);
        };
        let found = sluice_core::lookup::get(&table.to_string_lossy(), &key.to_string_lossy());
        Ok(found.unwrap_or(Value::Null))
    }

    fn type_def(&self, _: &TypeState) -> TypeDef {
        TypeDef::any().infallible()
    }
}
