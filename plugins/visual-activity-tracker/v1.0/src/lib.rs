//! The VisualActivityTracker 1.0 plugin library: the ActivityState context from the Visual channel's focus.
//! The implementation is `avs-plugin-visual-activity-tracker`.

avs_plugin_sdk::export_plugin!(
    avs_visual_activity_tracker_plugin::VisualActivityTracker,
    "$CARGO_MANIFEST_DIR/../../../schemas/VisualActivityTracker/1.0"
);
