//! tarn in a DataFusion session of an application's own: its own config, its own tables
//! (a CSV file here), and a current-thread runtime. `register` adds a warehouse as a
//! catalog; the session then runs SELECT, INSERT, MERGE and time travel on tarn tables, and
//! the returned context runs tarn's DDL.
//!
//! ```sh
//! cargo run -p tarn-datafusion --example embed
//! ```

use datafusion::arrow::array::{AsArray, Float64Array};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::Result;
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use tarn_core::Warehouse;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let prices = dir.path().join("prices.csv");
    std::fs::write(
        &prices,
        "id,name,price\n2,pen,1.5\n3,lamp,27.0\n4,mug,8.0\n",
    )?;

    // The application's session: its config, and a table of its own.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_batch_size(4096));
    ctx.register_csv(
        "prices",
        prices.to_str().expect("a UTF-8 path"),
        CsvReadOptions::new(),
    )
    .await?;

    // The warehouse as catalog `lake`; tarn's DDL runs through the returned context.
    let warehouse = Warehouse::open(dir.path().join("lake").to_str().expect("a UTF-8 path"))
        .map_err(tarn_datafusion::error::to_df)?;
    warehouse
        .create_namespace("shop")
        .await
        .map_err(tarn_datafusion::error::to_df)?;
    let tarn = tarn_datafusion::register(&ctx, warehouse, "lake").await?;
    tarn.sql(
        "CREATE TABLE lake.shop.items (id BIGINT NOT NULL, name VARCHAR, price DOUBLE) \
         PARTITIONED BY (bucket(4, id))",
    )
    .await?
    .collect()
    .await?;

    // Everything else is the session's own SQL.
    let run = |sql: &'static str| {
        let ctx = ctx.clone();
        async move { ctx.sql(sql).await?.collect().await }
    };
    run(
        "INSERT INTO lake.shop.items VALUES (1, 'book', 12.5), (2, 'pen', 1.25), (3, 'lamp', 30.0)",
    )
    .await?;
    let joined = run("SELECT i.id, i.name, i.price AS ours, p.price AS theirs \
         FROM lake.shop.items i JOIN prices p ON i.id = p.id ORDER BY i.id")
    .await?;
    println!("{}", pretty_format_batches(&joined)?);

    // The join's result, merged back: matched rows take the CSV's price, new ones arrive.
    let merged = run(
        "MERGE INTO lake.shop.items t USING prices p ON t.id = p.id \
         WHEN MATCHED AND t.price <> p.price THEN UPDATE SET price = p.price \
         WHEN NOT MATCHED THEN INSERT VALUES (p.id, p.name, p.price)",
    )
    .await?;
    let changed = merged[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
    assert_eq!(changed.value(0), 3, "two prices updated, one item inserted");

    let now = run("SELECT id, name, price FROM lake.shop.items ORDER BY id").await?;
    println!("{}", pretty_format_batches(&now)?);
    let ids: Vec<i64> = now[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    let price = now[0]
        .column(2)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("price is a double")
        .value(2);
    assert_eq!(price, 27.0);

    // Time travel by name: the table before the MERGE.
    let before =
        run("SELECT count(*) AS items, sum(price) AS total FROM lake.shop.items@v1").await?;
    println!("{}", pretty_format_batches(&before)?);
    let items = before[0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(items, 3);
    Ok(())
}
