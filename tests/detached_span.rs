//! `span(..).start_detached()`: an observation placed where it is opened, current only while
//! entered (on any thread), ended when dropped.

use std::time::Duration;

use observe_runtime::{
    current_observation, current_observation_id, span, Config, Exporter, MemoryExporter,
    ObservationType,
};

#[test]
fn a_detached_span_is_current_only_while_entered_and_moves_between_threads() {
    let memory = MemoryExporter::new();
    let _guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .expect("init");
    let root = span("root").start();
    let root_id = current_observation_id().expect("the root is current");
    let trace = observe_runtime::current_trace_id().expect("a trace");
    let mut detached = span("call")
        .as_type(ObservationType::Generation)
        .start_detached();
    assert!(detached.is_recording());
    assert!(detached.captures_io());
    assert_eq!(detached.field_limit(), observe_runtime::DEFAULT_FIELD_LIMIT);
    // Opened, but the root is still what is current.
    assert_eq!(current_observation_id(), Some(root_id));
    let detached_id = detached.id().expect("recorded");
    let child_parent = std::thread::spawn(move || {
        assert_eq!(
            current_observation_id(),
            None,
            "nothing current on a new thread"
        );
        let parent = detached.in_scope(|| {
            current_observation().model("m-1");
            let child = span("inner").start();
            drop(child);
            current_observation_id()
        });
        assert_eq!(current_observation_id(), None, "left after the scope");
        std::thread::sleep(Duration::from_millis(5));
        detached.end();
        parent
    })
    .join()
    .unwrap();
    assert_eq!(child_parent, Some(detached_id));
    drop(root);
    let spans = memory.trace(trace);
    let names: Vec<(&str, Option<String>)> = spans
        .iter()
        .map(|s| (s.name.as_ref(), s.parent_span_id.map(|id| id.to_string())))
        .collect();
    assert_eq!(
        names,
        [
            ("inner", Some(detached_id.to_string())),
            ("call", Some(root_id.to_string())),
            ("root", None),
        ]
    );
    let call = spans.iter().find(|s| s.name == "call").unwrap();
    assert_eq!(call.kind, ObservationType::Generation);
    assert_eq!(call.model.as_deref(), Some("m-1"));
}
