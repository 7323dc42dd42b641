// The version mnist-dist reports (--version, the start block, checkpoints' created_by).

public enum Version {
    public static let string = "0.1.0"
}
