//! Spark's `assert_true(condition [, message])`: NULL when `condition` is true, and the
//! statement fails (with `message`, when given) on the first row where it is false or NULL.
//! A pipeline checks what it is about to write with it; `INSERT ... REPLACE WHERE` checks
//! that its rows satisfy its condition with it.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The function, to register in a session.
pub(crate) fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(AssertTrue {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Boolean]),
                TypeSignature::Exact(vec![DataType::Boolean, DataType::Utf8]),
            ],
            // Never folded away or moved past the rows it checks.
            Volatility::Volatile,
        ),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct AssertTrue {
    signature: Signature,
}

impl ScalarUDFImpl for AssertTrue {
    fn name(&self) -> &str {
        "assert_true"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let condition = args.args[0].to_array(rows)?;
        let condition = condition.as_boolean();
        let holds = condition.null_count() == 0 && condition.true_count() == condition.len();
        if holds {
            return Ok(ColumnarValue::Scalar(ScalarValue::Null));
        }
        let failed = (0..condition.len())
            .find(|&i| condition.is_null(i) || !condition.value(i))
            .unwrap_or(0);
        let message = match args.args.get(1) {
            None => None,
            Some(ColumnarValue::Scalar(message)) => {
                message.try_as_str().flatten().map(String::from)
            }
            Some(ColumnarValue::Array(messages)) => {
                let messages = messages.as_string::<i32>();
                (!messages.is_null(failed)).then(|| messages.value(failed).to_string())
            }
        };
        Err(DataFusionError::Execution(match message {
            Some(message) => message,
            None if condition.is_null(failed) => "assert_true: the condition is NULL".into(),
            None => "assert_true: the condition is false".into(),
        }))
    }
}
