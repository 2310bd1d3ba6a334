//! A Ballista cluster inside this process, over loopback: one scheduler and executors that
//! each have a runtime of their own, as on separate machines. For tests and benchmarks.
//!
//! The cluster schedules by push, as a deployed cluster can: the scheduler hands each task
//! to an executor the moment its stage can run, and the executor reports the task's end the
//! moment it ends. Ballista's in-process helpers schedule by pull instead, where an idle
//! executor asks for work every 50 ms and reports finished tasks only with its next ask:
//! every stage of a query then waits up to twice that, which on one machine is most of the
//! cluster's overhead for short queries.
//!
//! The executors are put together here rather than by Ballista's executor process, which
//! takes over the process's SIGINT and SIGTERM. Everything runs on the caller's Tokio
//! runtime and stops with it; the executors' shuffle files live in a temporary directory
//! removed then.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::ExecutorRegistration;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::serde::scheduler::{
    ExecutorOperatingSystemSpecification, ExecutorSpecification,
};
use ballista_core::utils::{GrpcServerConfig, create_grpc_server, create_grpc_server_incoming};
use ballista_core::{BALLISTA_PROTOCOL_VERSION, ConfigProducer, RuntimeProducer};
use ballista_executor::executor::Executor;
use ballista_executor::executor_process::ExecutorProcessConfig;
use ballista_executor::executor_server;
use ballista_executor::flight_service::BallistaFlightService;
use ballista_executor::health::ExecutorHealth;
use ballista_executor::metrics::LoggingMetricsCollector;
use ballista_executor::shutdown::ShutdownNotifier;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::metrics::default_metrics_collector;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::{codec, runtime_env, session_config};

const HOST: &str = "127.0.0.1";
const POLICY: TaskSchedulingPolicy = TaskSchedulingPolicy::PushStaged;

fn failed(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("starting a loopback cluster's {what}: {e}"))
}

/// Starts a scheduler and `executors` executors (each running `slots` tasks at once) in
/// this process, over loopback, and returns the URL [`super::connect`] takes. Each
/// executor has a runtime of its own, as on separate machines: nothing the client
/// registered is there. The cluster runs until the Tokio runtime it was started on stops.
pub async fn loopback_cluster(executors: usize, slots: usize) -> Result<String> {
    let scheduler = start_scheduler().await?;
    let work = tempfile::Builder::new()
        .prefix("tarn-ballista-")
        .tempdir()
        .map_err(|e| failed("work directory", e))?;
    let shutdown = ShutdownNotifier::new();
    for i in 0..executors {
        let dir = work.path().join(format!("executor-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| failed("work directory", e))?;
        let dir = dir
            .to_str()
            .ok_or_else(|| failed("work directory", "not UTF-8"))?;
        start_executor(scheduler, slots, dir, &shutdown).await?;
    }
    // The servers stop when the notifier goes: when this task is dropped with the runtime,
    // which then removes the shuffle files too.
    tokio::spawn(async move {
        let _running = (shutdown, work);
        std::future::pending::<()>().await
    });
    Ok(format!("df://{scheduler}"))
}

/// A scheduler scheduling by push, serving on a free port; its address.
async fn start_scheduler() -> Result<SocketAddr> {
    let incoming = create_grpc_server_incoming(any_port(), &GrpcServerConfig::default())
        .map_err(|e| failed("scheduler", e))?;
    let address = incoming.local_addr().map_err(|e| failed("scheduler", e))?;
    let endpoint = address.to_string();
    let config_producer: ConfigProducer = Arc::new(session_config);
    let session_builder = Arc::new(|config: SessionConfig| {
        Ok(SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_env()?)
            .with_default_features()
            .build())
    });
    let cluster = BallistaCluster::new_memory(&endpoint, session_builder, config_producer);
    let mut server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode> = SchedulerServer::new(
        endpoint,
        cluster,
        codec(),
        Arc::new(SchedulerConfig::default().with_scheduler_policy(POLICY)),
        default_metrics_collector().map_err(|e| failed("scheduler", e))?,
    );
    server.init().await.map_err(|e| failed("scheduler", e))?;
    let max_message = session_config().ballista_grpc_client_max_message_size();
    let service = SchedulerGrpcServer::new(server)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    Ok(address)
}

/// An executor that takes tasks the scheduler at `scheduler` pushes to it, with its
/// shuffle files in `work_dir`; registered with the scheduler when this returns.
async fn start_executor(
    scheduler: SocketAddr,
    slots: usize,
    work_dir: &str,
    shutdown: &ShutdownNotifier,
) -> Result<()> {
    let client = SchedulerGrpcClient::connect(format!("http://{scheduler}"))
        .await
        .map_err(|e| failed("executors", e))?;
    // Shuffle data is served by Arrow Flight, on a port of its own.
    let flight = create_grpc_server_incoming(any_port(), &GrpcServerConfig::default())
        .map_err(|e| failed("executors", e))?;
    let flight_port = flight
        .local_addr()
        .map_err(|e| failed("executors", e))?
        .port();
    let config_producer: ConfigProducer = Arc::new(session_config);
    let max_message = session_config().ballista_grpc_client_max_message_size();
    let mut stop = shutdown.subscribe_for_shutdown();
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(
                FlightServiceServer::new(BallistaFlightService::new(work_dir.to_string()))
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            )
            .serve_with_incoming_shutdown(flight, async move { stop.recv().await }),
    );

    // Ballista's executor server binds its task port itself: find it a free one, and
    // another if something took that one in between.
    let mut attempt = 1;
    loop {
        let grpc_port = free_port()?;
        let config = ExecutorProcessConfig {
            bind_host: HOST.into(),
            external_host: Some(HOST.into()),
            port: flight_port,
            grpc_port,
            scheduler_host: HOST.into(),
            scheduler_port: scheduler.port(),
            vcores: slots,
            task_scheduling_policy: POLICY,
            work_dir: Some(work_dir.to_string()),
            grpc_max_decoding_message_size: max_message as u32,
            grpc_max_encoding_message_size: max_message as u32,
            ..ExecutorProcessConfig::default()
        };
        let registration = ExecutorRegistration {
            id: config.executor_id.clone(),
            host: config.external_host.clone(),
            port: u32::from(flight_port),
            grpc_port: u32::from(grpc_port),
            specification: Some(
                ExecutorSpecification::default()
                    .with_vcores(slots as u32)
                    .into(),
            ),
            os_info: Some(ExecutorOperatingSystemSpecification::default().into()),
            ballista_protocol_version: BALLISTA_PROTOCOL_VERSION,
        };
        let runtime = runtime_env()?;
        let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
        let functions = (&SessionStateBuilder::new().with_default_features().build()).into();
        let executor = Arc::new(Executor::with_default_execution_engine(
            registration,
            work_dir,
            runtime_producer,
            config_producer.clone(),
            Arc::new(functions),
            Arc::new(LoggingMetricsCollector::default()),
            slots,
        ));
        // The executor's stop requests (from the scheduler) have nowhere to go: it runs
        // until the notifier stops it.
        let (stop_requests, _) = tokio::sync::mpsc::channel(1);
        match executor_server::startup(
            client.clone(),
            Arc::new(config),
            executor,
            codec(),
            stop_requests,
            shutdown,
            ExecutorHealth::new(),
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 3 => attempt += 1,
            Err(e) => return Err(failed("executors", e)),
        }
    }
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(any_port())
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed("executors", e))
}
